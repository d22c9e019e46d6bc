"""`tlcli pseudolabel`: self-training rounds (Lee 2013; Xie et al.'s noisy student, 2020).

Round 0 is the labelled-only model (the --from classifier as it is, or one trained on the labelled data
from a pretrained backbone). Each later round labels the unlabelled images with the previous round's model,
keeps those at least ``--threshold`` confident, at most ``--per-class-cap`` per predicted class (most
confident first, so no class swallows the set), and trains on labelled + kept, starting from the previous
round's weights. It stops after ``--rounds`` or when a round would add no image the previous one did not
have. True labels of ``--unlabelled`` (when it is a class-folder tree) only feed the ``kept_accuracy``
report; they never reach training.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tlcli.runs.artifacts import read_model
from tlcli.cli.report import rounded
from tlcli.data.bad_files import BadFiles
from tlcli.data.decoded import UNLABELLED, DecodedImages, EvalImages, eval_transform
from tlcli.data.labelled import train_and_val, training_classes
from tlcli.data.sources import LabelledSample, expand_paths, load_labelled
from tlcli.data.tables import columns_of, is_table
from tlcli.engine import distributed
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.device import resolve_device
from tlcli.engine.loop import fit
from tlcli.console.errors import UsageError
from tlcli_selfsup.classifier import ClassifierTask, ImageSet, predict_probabilities, whole, write_classifier
from tlcli_selfsup.config import PseudolabelConfig
from tlcli_selfsup.images import preprocessing_for
from tlcli_selfsup.round_store import RoundStore

if TYPE_CHECKING:
    from tlcli.cli.report import Report
    from tlcli.runs.run import Run


def select_confident(probabilities: torch.Tensor, threshold: float, cap: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (ascending) and predicted labels of the rows kept: confidence >= ``threshold``, and per
    predicted class at most ``cap`` rows, the most confident first (ties: lower index first)."""
    confidence, predicted = probabilities.max(dim=1)
    kept = []
    for label in range(probabilities.shape[1]):
        rows = torch.nonzero((predicted == label) & (confidence >= threshold)).flatten()
        order = torch.argsort(confidence[rows], descending=True, stable=True)
        kept.append(rows[order][:cap] if cap is not None else rows[order])
    indices = torch.sort(torch.cat(kept)).values if kept else torch.zeros(0, dtype=torch.long)
    return indices, predicted[indices]


def _unlabelled_with_truth(root: str, classes: list[str], pre: dict, bad: BadFiles, workers,
                           columns=None) -> DecodedImages:
    """Every image under ``root``; an image in ``root/<class>/`` (or a table row whose label column holds
    a known class) keeps that class as its true label (for the report only), others get UNLABELLED."""
    if is_table(root):
        return DecodedImages(_table_with_truth(root, classes, bad, columns), classes, pre, bad, workers)
    found, skipped = expand_paths([root])
    bad.extend(skipped)
    if not found:
        raise UsageError(f"--unlabelled {root}: no images found")
    base = Path(root)
    samples = []
    for path in found:
        try:
            parts = path.relative_to(base).parts
        except ValueError:
            parts = ()
        label = parts[0] if len(parts) > 1 and parts[0] in classes else ""
        samples.append(LabelledSample(path, label))
    return DecodedImages(samples, classes, pre, bad, workers)


def _table_with_truth(source: str, classes: list[str], bad: BadFiles, columns) -> list[LabelledSample]:
    """A table's images; a row whose label is a known class keeps it (for the report only)."""
    samples = load_labelled(source, bad_files=bad, columns=columns, labels="optional")
    return [LabelledSample(s.path, s.label if s.label in classes else "") for s in samples]


@dataclass
class _Data:
    """The images of one run, decoded once for all rounds."""
    classes: list[str]
    pre: dict
    labelled: DecodedImages
    val: DecodedImages | None
    pool: DecodedImages  # the unlabelled images; their labels are the true ones where known (report only)
    bad: BadFiles


def run_pseudolabel(cfg: PseudolabelConfig, run, report) -> dict:
    """The job of `tlcli pseudolabel`: run (or on ``--resume`` continue) the rounds. A resumed run reads back
    the rounds that finished, continues the round in progress from its last checkpoint and runs the rest: the
    same rounds as an uninterrupted run. Under torchrun every rank trains each round; rank 0 picks the
    pseudo-labels and writes the files. The summary lists the ``rounds``; the last one's validation accuracy
    is ``best`` (its model is the run's)."""
    source = read_model(Path(cfg.start))
    if source.kind not in ("backbone", "image-classifier"):
        raise UsageError(f"--from {cfg.start}: a {source.kind!r} model; pass a finetune or pretrain run")
    from tlcli.adapters.run_folder import refuse_adapter_run

    refuse_adapter_run(source.path, "--from")
    data = _load_data(cfg, source, report)
    cap = cfg.per_class_cap or math.ceil(len(data.pool) / len(data.classes))
    device = resolve_device(cfg.device)
    # Every rank trains each round; rank 0 picks the pseudo-labels and broadcasts them.
    dist_info = distributed.setup(device.type)
    run.start({"model": cfg.model, "classes": data.classes, "labelled": len(data.labelled),
               "unlabelled": len(data.pool), "val": len(data.val) if data.val else 0, "cap": cap,
               "resumed": run.resumed, "world_size": dist_info.world})
    rounds = _Rounds(cfg, data, run, dist_info, device, cap, run.resumed, report, source.kind == "backbone",
                     source.tensors())
    rounds.run_all()
    if run.writable:
        _export(run, rounds.state, data, cfg.model)
    last = rounds.rows[-1] if rounds.rows else {}
    summary = {"status": rounds.status,
               "best": {"metric": "val_accuracy", "value": last.get("val_accuracy"), "step": None},
               "metrics": {"val_accuracy": last.get("val_accuracy"), "round": last.get("round"),
                           "kept": last.get("kept"), "kept_accuracy": last.get("kept_accuracy")},
               "rounds": rounds.rows, "model": cfg.model, "threshold": cfg.threshold, "per_class_cap": cap,
               "labelled": len(data.labelled), "unlabelled": len(data.pool),
               "val_images": len(data.val) if data.val else 0, "classes": data.classes,
               "bad_files": data.bad.summary()}
    report.table(f"pseudolabel {rounds.status}: {run.path}", ["round", "kept", "kept accuracy", "val accuracy"],
                 [[r["round"], r["kept"], _fmt(r["kept_accuracy"]), _fmt(r["val_accuracy"])] for r in rounds.rows])
    return summary


def _load_data(cfg: PseudolabelConfig, source, report) -> _Data:
    """Decode the labelled, validation and unlabelled images, checking the classes against ``source``."""
    pre = dict(source.preprocessing) or preprocessing_for(cfg.model, "none", None)
    if cfg.image_size:
        pre = {**pre, "resize": max(cfg.image_size, round(cfg.image_size * pre["resize"] / pre["crop"])),
               "crop": cfg.image_size}
    bad = BadFiles()
    train_samples, val_samples = train_and_val(cfg.data, cfg.val, cfg.val_split, cfg.seed, bad, columns_of(cfg))
    samples = train_samples if cfg.val else train_samples + val_samples  # DATA's own images
    if source.kind == "backbone":
        classes = training_classes(train_samples, val_samples, cfg.data)
    else:
        classes = list(source.labels)
        unknown = sorted({s.label for s in samples} - set(classes))
        if unknown:
            raise UsageError(f"{cfg.data}: classes {', '.join(unknown[:5])} are not among the --from model's "
                             f"labels ({', '.join(classes[:5])}...); pass a run trained on the same classes")
    report.info("decoding images")
    labelled = DecodedImages(train_samples, classes, pre, bad, cfg.workers)
    val = DecodedImages(val_samples, classes, pre, bad, cfg.workers) if val_samples else None
    pool = _unlabelled_with_truth(cfg.unlabelled, classes, pre, bad, cfg.workers, columns_of(cfg))
    bad.check(len(samples) + len(pool) + len(bad), cfg.max_bad)
    return _Data(classes, pre, labelled, val, pool, bad)


@dataclass
class _Rounds:
    """The rounds of one run, in order: each read back (it finished before a resume) or run."""
    cfg: PseudolabelConfig
    data: _Data
    run: Run
    dist_info: distributed.DistInfo
    device: torch.device
    cap: int
    resume: bool
    report: Report
    from_backbone: bool
    state: dict  # the latest round's weights (the --from model's before round 0)
    status: str = "finished"
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = RoundStore(self.run.path / "rounds", writable=self.run.writable)
        self.pool_view = EvalImages(self.data.pool, eval_transform(self.data.pre))

    def run_all(self) -> None:
        previous = self.read_back(0)
        if previous is None:
            self.labelled_only_round()
            previous = set()
        for index in range(1, self.cfg.rounds + 1):
            if self.status != "finished":
                break
            kept = self.read_back(index)
            if kept is None:
                kept = self.self_training_round(index, previous)
            if kept is None:
                break
            previous = kept

    def read_back(self, index: int) -> set[int] | None:
        """A round that finished before the resume: its row and weights, not retrained."""
        done = self.store.finished(index) if self.resume else None
        if done is None:
            return None
        self.rows.append(done["row"])
        exported = self.store.weights(index) if index > 0 or self.from_backbone else None
        self.state = exported if exported is not None else self.state
        self.run.log("info", f"round {index}: finished before the resume; read back, not retrained")
        return set(done["kept"])

    def labelled_only_round(self) -> None:
        """Round 0: the --from classifier as it is, or one trained on the labelled images alone."""
        steps = 0
        if self.from_backbone:
            result = self.train(0, [whole(self.data.labelled)], True)
            val_accuracy, steps = result.best, result.steps
        else:
            val_accuracy = _accuracy(self.cfg.model, self.data.classes, self.state, self.data.val, self.data.pre,
                                     self.device)
        self.finish(0, {"round": 0, "kept": 0, "kept_accuracy": None, "val_accuracy": val_accuracy,
                        "steps": steps}, [])

    def self_training_round(self, index: int, previous: set[int]) -> set[int] | None:
        """Label the pool with the latest model, keep the confident images and train on them; None (and no
        training) when that would add no image to ``previous``."""
        cfg, data = self.cfg, self.data
        kept, labels = _selection(index, self.store, self.resume, self.dist_info, lambda: select_confident(
            predict_probabilities(cfg.model, data.classes, self.state, self.pool_view, self.device,
                                  cfg.eval_batch_size), cfg.threshold, self.cap))
        if set(kept) <= previous:
            self.run.log("info", f"round {index}: no image added to the {len(previous)} kept before; stopping")
            return None
        result = self.train(index, [whole(data.labelled), (data.pool, kept, labels)], False)
        self.finish(index, {"round": index, "kept": len(kept),
                            "kept_accuracy": _kept_accuracy(data.pool.labels, kept, labels),
                            "val_accuracy": result.best, "steps": result.steps}, kept)
        return set(kept)

    def train(self, index: int, parts: list[tuple], start_is_backbone: bool):
        """Train round ``index`` on ``parts`` from the latest weights (continuing its checkpoint on resume)."""
        folder = self.store.folder(index)
        folder.mkdir(parents=True, exist_ok=True)
        continuing = self.resume and self.store.has_checkpoint(index)
        if not continuing:
            self.store.clear_checkpoints(index)
        task = ClassifierTask(self.cfg, self.cfg.model, self.data.classes, ImageSet(parts), self.data.val,
                              self.data.pre, self.state, start_is_backbone)
        callbacks = standard_callbacks(self.run, "pseudolabel", "selfsup", self.report.progress_quiet,
                                       stage=f"round-{index}")
        # The monitor shows (and stops) the whole run: its stop request ends this round's fit.
        result = fit(task, self.cfg, folder, callbacks=callbacks, resume=continuing, outer_runs=(self.run.path,))
        distributed.barrier(self.dist_info)  # rank 0 has exported the round's model: every rank reads it back
        exported = self.store.weights(index)
        self.state = exported if exported is not None else self.state
        self.status = result.status
        return result

    def finish(self, index: int, row: dict, kept: list[int]) -> None:
        row = rounded(row)  # as the summary shows it, so round.json read back on --resume is the same row
        self.rows.append(row)
        if self.status == "finished":
            self.store.mark_finished(index, row, kept)
        self.run.emit("eval", {"metrics": row}, stage=f"round-{index}")
        if index > 0:
            self.report.info(f"round {index}: kept {row['kept']}, their accuracy {_fmt(row['kept_accuracy'])}, "
                 f"val accuracy {_fmt(row['val_accuracy'])}")


def _kept_accuracy(truth: list[int], kept: list[int], labels: list[int]) -> float | None:
    """How many pseudo-labels match the true labels, among kept images that have one (report only)."""
    kept_truth = torch.tensor(truth)[torch.tensor(kept, dtype=torch.long)]
    known = kept_truth != UNLABELLED
    if not bool(known.any()):
        return None
    return (torch.tensor(labels, dtype=torch.long)[known] == kept_truth[known]).float().mean().item()


def _export(run, state: dict, data: _Data, spec: str) -> None:
    """The last round's classifier as the run's model/."""
    with run.model_writer() as tmp:
        write_classifier(tmp / "model", state, data.classes, data.pre, spec)
        for item in (tmp / "model").iterdir():
            shutil.move(str(item), tmp / item.name)
        (tmp / "model").rmdir()


def _selection(index: int, store: RoundStore, resume: bool, dist_info, choose) -> tuple[list[int], list[int]]:
    """The images round ``index`` trains on and their pseudo-labels: read back when a resumed round chose
    them before, else chosen by rank 0 (``choose()``) and shared, so every rank trains on the same set."""
    saved = store.selection(index) if resume else None
    if saved is None:
        if dist_info.is_main:
            kept, labels = choose()
            saved = (kept.tolist(), labels.tolist())
        saved = distributed.broadcast_object(saved, dist_info)
        store.save_selection(index, *saved)
    return saved


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _accuracy(spec: str, classes: list[str], state: dict, val, pre: dict, device) -> float | None:
    if val is None:
        return None
    probabilities = predict_probabilities(spec, classes, state, EvalImages(val, eval_transform(pre)), device)
    return (probabilities.argmax(dim=1) == torch.tensor(val.labels)).float().mean().item()
