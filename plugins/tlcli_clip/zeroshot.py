"""`tlcli zeroshot`: image features (cached) against label embeddings (cached), softmax, output."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tlcli.data.bad_files import BadFiles
from tlcli.data.sources import expand_paths, load_labelled, scan_class_folders
from tlcli.data.tables import columns_of, is_table
from tlcli.console.errors import UsageError
from tlcli.models.clip import load_clip
from tlcli.classify.evaluation import classification_report, classifier_records
from tlcli.features.images import stream_image_features
from tlcli.console.output import display_path
from tlcli_clip.config import ZeroshotConfig
from tlcli_clip.text import label_embeddings, resolve_templates, zero_shot_probs

UNKNOWN = "unknown"


def read_inputs(args: list[str], evaluate: bool, bad: BadFiles,
                columns=None) -> tuple[list[Path], list[str] | None]:
    """The image paths, and with ``--eval`` each one's true label (its class folder, a table's label)."""
    if evaluate:
        if len(args) == 1 and is_table(args[0]):
            samples = load_labelled(args[0], bad_files=bad, columns=columns, default_split="test")
        elif len(args) != 1 or args[0] == "-" or not Path(args[0]).is_dir():
            raise UsageError("--eval needs PATHS to be one folder with a subfolder per label, or one labelled table")
        else:
            samples = scan_class_folders(Path(args[0]), bad_files=bad)
        paths, truth_names = [s.path for s in samples], [s.label for s in samples]
    else:
        paths, skipped = expand_paths(args, columns=columns, default_split="test")
        bad.extend(skipped)
        truth_names = None
    if not paths:
        raise UsageError(f"no images found in {' '.join(args)}; pass image files, folders or - (paths on stdin)")
    return paths, truth_names


def _resolve_labels(labels: list[str] | None, truth_names: list[str] | None, coop) -> list[str]:
    """``--labels``, else the learned prompts' own (class-specific) or the class folders' names."""
    if coop is not None:
        labels = labels or (sorted(set(truth_names)) if truth_names and not coop.meta["class_specific"] else None) \
            or coop.labels
    else:
        labels = labels or sorted(set(truth_names or []))
    if truth_names is not None:
        missing = sorted(set(truth_names) - set(labels))
        if missing:
            raise UsageError(f"--eval: label folders not among the labels: {', '.join(missing[:5])}; add them to --labels")
    return labels


def show_metrics(report, metrics: dict, labels: list[str], title: str = "zero-shot accuracy") -> None:
    report.table(title, ["accuracy", "top-5 accuracy", "mean recall", "images"],
                 [[f"{metrics['accuracy']:.4f}", f"{metrics['top5_accuracy']:.4f}", f"{metrics['mean_recall']:.4f}",
                   metrics["n"]]])
    report.table("confusion (rows: truth, columns: predicted)", ["truth"] + labels,
                 [[name] + counts for name, counts in zip(labels, metrics["confusion"])])


def show_records(report, rows: list[dict]) -> None:
    """The per-image records for people (the table escapes terminal controls in names)."""
    report.table(None, ["path", "label", "score", "top"],
                 [[r["path"], r["label"], f"{r['score']:.3f}",
                   ", ".join(f"{t['label']} {t['score']:.2f}" for t in r["top"][1:])] for r in rows])


def run_zeroshot(cfg: ZeroshotConfig, run, report) -> dict:
    """The job of `tlcli zeroshot`: a record per image (as soon as its features are ready), then the summary
    (with --eval, the metrics of `tlcli evaluate` at the top of ``metrics``)."""
    if cfg.vprompt is not None:
        from tlcli_clip.vprompt import run_vprompt_zeroshot

        return run_vprompt_zeroshot(cfg, report)
    started = time.time()
    bad = BadFiles()
    paths, truth_names = read_inputs(cfg.paths, cfg.evaluate, bad, columns_of(cfg))
    unlisted = len(bad)  # skipped before decoding (a FIFO, a dangling link): tried too, so counted in the total
    coop = None
    if cfg.prompt is not None:
        from tlcli_clip.coop import load_prompt_run

        coop = load_prompt_run(Path(cfg.prompt))
    labels = _resolve_labels(cfg.label_names(), truth_names, coop)
    model, pretrained = (coop.meta["model"], coop.meta["pretrained"]) if coop else (cfg.model, cfg.pretrained)
    clip = load_clip(model, pretrained, cfg.device, cfg.precision)
    report.info(f"zero-shot {len(paths)} images, {len(labels)} labels, {clip.spec['model']} "
                f"({clip.spec['precision']}, {clip.device_name})")
    if coop is not None:
        head = coop.head(clip, labels)
    else:
        head = label_embeddings(clip, labels, resolve_templates(cfg.templates), use_cache=cfg.cache)
    # Records go out as soon as their features are ready, in input order (a pipe sees the first lines
    # while the model works); --max-bad is judged at the end, so a run that then fails has printed some.
    stats: dict = {}
    features_started = time.time()
    kept: list[int] = []
    prob_chunks = []
    rows = []
    for indices, features in stream_image_features(clip, paths, bad, batch_size=cfg.batch_size,
                                                   workers=cfg.workers, use_cache=cfg.cache,
                                                   stats=stats, quiet=report.progress_quiet):
        probs = zero_shot_probs(clip, features, head) if coop is None else coop.probs(clip, features, head)
        for i, fields in zip(indices, classifier_records(probs, labels, cfg.top_k)):
            record = {"path": display_path(paths[i]), **fields}
            if cfg.threshold is not None and record["score"] < cfg.threshold:
                record["label"] = UNKNOWN
            if truth_names is not None:
                record["truth"] = truth_names[i]
            rows.append(record)
            report.record(record)
        kept.extend(indices)
        prob_chunks.append(probs)
    features_s = time.time() - features_started
    bad.check(len(paths) + unlisted, cfg.max_bad)
    show_records(report, rows)
    summary = {"status": "finished", "images": len(rows), "cached": stats["cached"], "computed": stats["computed"],
               "infer_samples_per_s": round(len(rows) / max(1e-9, features_s), 2), "wall_s": round(time.time() - started, 3),
               "precision": clip.spec["precision"], "bad_files": bad.summary()}
    if truth_names is not None:
        probs = np.concatenate(prob_chunks) if prob_chunks else np.zeros((0, len(labels)), dtype=np.float32)
        index = {name: i for i, name in enumerate(labels)}
        truth = np.array([index[truth_names[i]] for i in kept], dtype=np.int64)
        summary["metrics"] = classification_report(probs, truth, labels)
        show_metrics(report, summary["metrics"], labels)
    report.info(f"{len(rows)} images in {summary['wall_s']:.1f}s ({stats['cached']} cached, {stats['computed']} "
                f"computed; features: {summary['infer_samples_per_s']:.1f} images/s)")
    return summary
