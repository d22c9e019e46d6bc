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
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.device import resolve_device
from tlcli.engine.loop import fit
from tlcli.errors import Interrupted, UsageError
from tlcli.output import emit_json, info, print_table
from tlcli_selfsup.classifier import ClassifierTask, ImageSet, predict_probabilities, whole, write_classifier
from tlcli_selfsup.config import PseudolabelConfig
from tlcli_selfsup.images import preprocessing_for


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


def run_pseudolabel(cfg: PseudolabelConfig, source, run, json_output: bool, quiet: bool) -> dict:
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

    run.start({"model": spec, "classes": classes, "labelled": len(labelled), "unlabelled": len(pool),
               "val": len(val) if val else 0, "cap": cap})
    rounds: list[dict] = []
    state = source.tensors()
    status = "finished"

    def train_round(index: int, parts: list[tuple], start: dict, start_is_backbone: bool):
        folder = run.path / "rounds" / f"round-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        task = ClassifierTask(cfg, spec, classes, ImageSet(parts), val, pre, start, start_is_backbone)
        callbacks = standard_callbacks(run, "pseudolabel", "selfsup", quiet, stage=f"round-{index}")
        result = fit(task, cfg, folder, callbacks=callbacks)
        return result, task.exported if task.exported is not None else start

    try:
        if from_backbone:
            result, state = train_round(0, [whole(labelled)], state, True)
            status = result.status
            val_accuracy = result.best
        else:
            val_accuracy = _accuracy(spec, classes, state, val, pre, device)
        rounds.append({"round": 0, "kept": 0, "kept_accuracy": None, "val_accuracy": val_accuracy})
        run.emit("eval", {"metrics": rounds[-1]}, stage="round-0")
        previous: set[int] = set()
        for index in range(1, cfg.rounds + 1):
            if status != "finished":
                break
            probabilities = predict_probabilities(spec, classes, state, pool_view, device, cfg.eval_batch_size)
            kept, labels = select_confident(probabilities, cfg.threshold, cap)
            if set(kept.tolist()) <= previous:
                run.log("info", f"round {index}: no image added to the {len(previous)} kept before; stopping")
                break
            previous = set(kept.tolist())
            known = truth[kept] != UNLABELLED
            kept_accuracy = ((labels[known] == truth[kept][known]).float().mean().item()
                             if bool(known.any()) else None)
            result, state = train_round(index, [whole(labelled), (pool, kept.tolist(), labels.tolist())], state,
                                        False)
            status = result.status
            rounds.append({"round": index, "kept": len(kept), "kept_accuracy": kept_accuracy,
                           "val_accuracy": result.best})
            run.emit("eval", {"metrics": rounds[-1]}, stage=f"round-{index}")
            if not quiet:
                info(f"round {index}: kept {len(kept)}, their accuracy {_fmt(kept_accuracy)}, "
                     f"val accuracy {_fmt(result.best)}")
        with run.model_writer() as tmp:
            write_classifier(tmp / "model", state, classes, pre, spec)
            for item in (tmp / "model").iterdir():
                shutil.move(str(item), tmp / item.name)
            (tmp / "model").rmdir()
    except BaseException as error:
        run.emit("run_end", {"status": "interrupted" if isinstance(error, KeyboardInterrupt) else "failed",
                             "error": f"{type(error).__name__}: {error}"})
        raise

    summary = {"run_dir": str(run.path), "status": status, "rounds": rounds, "threshold": cfg.threshold,
               "per_class_cap": cap, "labelled": len(labelled), "unlabelled": len(pool),
               "val_images": len(val) if val else 0, "classes": classes, "bad_files": bad.summary()}
    run.write_metrics(summary)
    run.emit("run_end", {"status": status, "error": None, "rounds": len(rounds) - 1})
    if json_output:
        emit_json(summary)
    else:
        print_table(f"pseudolabel {status}: {run.path}", ["round", "kept", "kept accuracy", "val accuracy"],
                    [[r["round"], r["kept"], _fmt(r["kept_accuracy"]), _fmt(r["val_accuracy"])] for r in rounds])
    if status == "interrupted":
        raise Interrupted("interrupted; the rounds finished so far are in the run folder")
    return summary


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _accuracy(spec: str, classes: list[str], state: dict, val, pre: dict, device) -> float | None:
    if val is None:
        return None
    probabilities = predict_probabilities(spec, classes, state, EvalImages(val, eval_transform(pre)), device)
    return (probabilities.argmax(dim=1) == torch.tensor(val.labels)).float().mean().item()
