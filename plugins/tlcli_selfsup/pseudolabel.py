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
from pathlib import Path

import torch

from tlcli.data.bad_files import BadFiles
from tlcli.data.decoded import UNLABELLED, DecodedImages, EvalImages, eval_transform
from tlcli.data.labelled import training_classes
from tlcli.data.sources import LabelledSample, expand_paths, load_labelled, stratified_split
from tlcli.engine import distributed
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.device import resolve_device
from tlcli.engine.loop import fit
from tlcli.errors import Interrupted, UsageError
from tlcli.output import emit_json, info, print_table
from tlcli_selfsup.classifier import ClassifierTask, ImageSet, predict_probabilities, whole, write_classifier
from tlcli_selfsup.config import PseudolabelConfig
from tlcli_selfsup.images import preprocessing_for
from tlcli_selfsup.round_store import RoundStore


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


def _unlabelled_with_truth(root: str, classes: list[str], pre: dict, bad: BadFiles, workers) -> DecodedImages:
    """Every image under ``root``; an image in ``root/<class>/`` with a known class keeps that class as
    its true label (for the report only), others get UNLABELLED."""
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


def run_pseudolabel(cfg: PseudolabelConfig, source, run, json_output: bool, quiet: bool,
                    resume: bool = False) -> dict:
    """Run (or with ``resume`` continue) the rounds. A resumed run reads back the rounds that finished,
    continues the round in progress from its last checkpoint and runs the rest: the same table as an
    uninterrupted run. Under torchrun every rank trains each round; rank 0 picks the pseudo-labels and
    writes the files."""
    spec = cfg.model
    from_backbone = source.kind == "backbone"
    if source.kind not in ("backbone", "image-classifier"):
        raise UsageError(f"--from {cfg.start}: a {source.kind!r} model; pass a finetune or pretrain run")
    pre = dict(source.preprocessing) or preprocessing_for(spec, "none", None)
    if cfg.image_size:
        pre = {**pre, "resize": max(cfg.image_size, round(cfg.image_size * pre["resize"] / pre["crop"])),
               "crop": cfg.image_size}

    bad = BadFiles()
    samples = load_labelled(Path(cfg.data), bad_files=bad)
    if cfg.val:
        train_samples, val_samples = samples, load_labelled(Path(cfg.val), bad_files=bad)
    elif cfg.val_split > 0:
        train_samples, val_samples = stratified_split(samples, cfg.val_split, cfg.seed)
    else:
        train_samples, val_samples = samples, []
    if from_backbone:
        classes = training_classes(train_samples, val_samples, cfg.data)
    else:
        classes = list(source.labels)
        unknown = sorted({s.label for s in samples} - set(classes))
        if unknown:
            raise UsageError(f"{cfg.data}: classes {', '.join(unknown[:5])} are not among the --from model's "
                             f"labels ({', '.join(classes[:5])}...); pass a run trained on the same classes")
    if not quiet:
        info("decoding images")
    labelled = DecodedImages(train_samples, classes, pre, bad, cfg.workers)
    val = DecodedImages(val_samples, classes, pre, bad, cfg.workers) if val_samples else None
    pool = _unlabelled_with_truth(cfg.unlabelled, classes, pre, bad, cfg.workers)
    bad.check(len(samples) + len(pool) + len(bad), cfg.max_bad)
    truth = torch.tensor(pool.labels)  # report only
    pool_view = EvalImages(pool, eval_transform(pre))
    cap = cfg.per_class_cap or math.ceil(len(pool) / len(classes))
    device = resolve_device(cfg.device)
    # Held for all rounds (each fit joins it rather than forming and ending its own).
    dist_info = distributed.setup(device.type)
    store = RoundStore(run.path / "rounds", writable=run.writable)

    run.start({"model": spec, "classes": classes, "labelled": len(labelled), "unlabelled": len(pool),
               "val": len(val) if val else 0, "cap": cap, "resumed": resume, "world_size": dist_info.world})
    rounds: list[dict] = []
    state = source.tensors()
    status = "finished"

    def train_round(index: int, parts: list[tuple], start: dict, start_is_backbone: bool):
        folder = store.folder(index)
        folder.mkdir(parents=True, exist_ok=True)
        continuing = resume and store.has_checkpoint(index)
        if not continuing:
            store.clear_checkpoints(index)
        task = ClassifierTask(cfg, spec, classes, ImageSet(parts), val, pre, start, start_is_backbone)
        callbacks = standard_callbacks(run, "pseudolabel", "selfsup", quiet, stage=f"round-{index}")
        result = fit(task, cfg, folder, callbacks=callbacks, resume=continuing)
        distributed.barrier(dist_info)  # rank 0 has exported the round's model: every rank reads it back
        exported = store.weights(index)
        return result, exported if exported is not None else start

    def finish_round(index: int, row: dict, kept: list[int]) -> None:
        rounds.append(row)
        if status == "finished":
            store.mark_finished(index, row, kept)
        run.emit("eval", {"metrics": row}, stage=f"round-{index}")
        if not quiet and index > 0:
            info(f"round {index}: kept {row['kept']}, their accuracy {_fmt(row['kept_accuracy'])}, "
                 f"val accuracy {_fmt(row['val_accuracy'])}")

    def read_back(index: int) -> set[int] | None:
        """A round that finished before the resume: its row and weights, not retrained."""
        nonlocal state
        done = store.finished(index) if resume else None
        if done is None:
            return None
        rounds.append(done["row"])
        exported = store.weights(index) if index > 0 or from_backbone else None
        state = exported if exported is not None else state
        run.log("info", f"round {index}: finished before the resume; read back, not retrained")
        return set(done["kept"])

    try:
        previous = read_back(0)
        if previous is None:
            if from_backbone:
                result, state = train_round(0, [whole(labelled)], state, True)
                status = result.status
                val_accuracy = result.best
            else:
                val_accuracy = _accuracy(spec, classes, state, val, pre, device)
            finish_round(0, {"round": 0, "kept": 0, "kept_accuracy": None, "val_accuracy": val_accuracy}, [])
            previous = set()
        for index in range(1, cfg.rounds + 1):
            if status != "finished":
                break
            kept_before = read_back(index)
            if kept_before is not None:
                previous = kept_before
                continue
            kept, labels = _selection(index, store, resume, dist_info, lambda: select_confident(
                predict_probabilities(spec, classes, state, pool_view, device, cfg.eval_batch_size),
                cfg.threshold, cap))
            if set(kept) <= previous:
                run.log("info", f"round {index}: no image added to the {len(previous)} kept before; stopping")
                break
            previous = set(kept)
            kept_tensor, label_tensor = torch.tensor(kept, dtype=torch.long), torch.tensor(labels, dtype=torch.long)
            known = truth[kept_tensor] != UNLABELLED
            kept_accuracy = ((label_tensor[known] == truth[kept_tensor][known]).float().mean().item()
                             if bool(known.any()) else None)
            result, state = train_round(index, [whole(labelled), (pool, kept, labels)], state, False)
            status = result.status
            finish_round(index, {"round": index, "kept": len(kept), "kept_accuracy": kept_accuracy,
                                 "val_accuracy": result.best}, kept)
        if run.writable:
            with run.model_writer() as tmp:
                write_classifier(tmp / "model", state, classes, pre, spec)
                for item in (tmp / "model").iterdir():
                    shutil.move(str(item), tmp / item.name)
                (tmp / "model").rmdir()
    except BaseException as error:
        run.emit("run_end", {"status": "interrupted" if isinstance(error, KeyboardInterrupt) else "failed",
                             "error": f"{type(error).__name__}: {error}"})
        raise
    finally:
        distributed.teardown(dist_info)

    summary = {"run_dir": str(run.path), "status": status, "rounds": rounds, "threshold": cfg.threshold,
               "per_class_cap": cap, "labelled": len(labelled), "unlabelled": len(pool),
               "val_images": len(val) if val else 0, "classes": classes, "bad_files": bad.summary()}
    run.write_metrics(summary)
    run.emit("run_end", {"status": status, "error": None, "rounds": len(rounds) - 1})
    if run.writable:
        if json_output:
            emit_json(summary)
        else:
            print_table(f"pseudolabel {status}: {run.path}", ["round", "kept", "kept accuracy", "val accuracy"],
                        [[r["round"], r["kept"], _fmt(r["kept_accuracy"]), _fmt(r["val_accuracy"])]
                         for r in rounds])
    if status == "interrupted":
        raise Interrupted(f"interrupted; the rounds finished so far are kept. Continue with: "
                          f"tlcli pseudolabel --resume {run.path}")
    if status == "stopped" and not quiet:
        info(f"stopped. Continue with: tlcli pseudolabel --resume {run.path}")
    return summary


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
