"""`tlcli predict` and `tlcli evaluate` on any trained run folder.

The run's ``model/model.json`` names a model kind; the plugin that registered that kind loads it (see
``Plugin.predictors``), so these commands work for fine-tuned backbones, CLIP probes and CoOp prompts alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

PREDICT_HELP = """Classify images with a trained run.

PATHS are files, folders (recursive) or - (one path per line on stdin).

Examples:

  tlcli predict runs/finetune-20261123-101500 photos/ --top-k 3

  find shots -name '*.jpg' | tlcli predict runs/my-run - --json > predictions.jsonl
"""

EVALUATE_HELP = """Measure a trained run on labelled data: accuracy, per-class recall, confusion matrix.

Prints top-1/top-5 accuracy, mean per-class recall and per-class precision/recall, and writes the
confusion matrix as a picture (SVG or PNG).

Example:

  tlcli evaluate runs/finetune-20261123-101500 test/ --confusion confusion.svg
"""


def register(app: typer.Typer) -> None:
    app.command("predict", help=PREDICT_HELP)(predict)
    app.command("evaluate", help=EVALUATE_HELP)(evaluate)


def load_run_predictor(run_dir: Path, device: str):
    """The predictor of a run folder (or of its model/ folder), loaded by the plugin that made it."""
    import importlib
    import json

    from tlcli.errors import UsageError
    from tlcli.registry import load_plugins

    model_dir = run_dir / "model" if (run_dir / "model").is_dir() else run_dir
    meta_path = model_dir / "model.json"
    if not meta_path.is_file():
        raise UsageError(f"{run_dir}: no model/model.json; pass a finished run folder (is the run still going?)")
    kind = json.loads(meta_path.read_text(encoding="utf-8")).get("kind", "")
    target = load_plugins().predictor_for(kind)
    if target is None:
        raise UsageError(f"{run_dir}: no installed plugin loads models of kind {kind!r}; see `tlcli plugins`")
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)(model_dir, device)


def _batches(indexed_items, batch_size: int):
    batch = []
    for item in indexed_items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict(
    run_dir: Path = typer.Argument(..., help="A trained run folder (or its model/ folder)."),
    paths: List[str] = typer.Argument(..., help="Image files, folders, or - for paths on stdin."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many labels to list per image."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding threads."),
    max_bad: str = typer.Option("5%", "--max-bad", help="Exit 2 at the end if more unreadable files than this."),
    json_output: bool = typer.Option(False, "--json", help='JSON Lines: {"path","label","score","top"}.'),
) -> None:
    import torch

    from tlcli.data.images import load_images
    from tlcli.data.sources import BadFiles, expand_paths, parse_max_bad
    from tlcli.errors import UsageError
    from tlcli.output import display_path, emit_json, print_table

    limit = parse_max_bad(max_bad)
    predictor = load_run_predictor(run_dir, device)
    files, skipped = expand_paths(paths)
    bad = BadFiles()
    bad.extend(skipped)
    if not files and not skipped:
        raise UsageError("no images found in the given paths; pass image files, folders, or - with paths on stdin")
    k = min(top_k, len(predictor.labels))
    rows = []
    decoded = (item for item in load_images(files, transform=predictor.transform, workers=workers))
    for batch in _batches(decoded, batch_size):
        good = []
        for index, result in batch:
            if isinstance(result, Exception):
                bad.add(result)
            else:
                good.append((index, result))
        if not good:
            continue
        probs = predictor.predict(torch.stack([tensor for _, tensor in good]))
        scores, top = probs.topk(k, dim=1)
        for (index, _), row_scores, row_top in zip(good, scores.tolist(), top.tolist()):
            record = {
                "path": display_path(files[index]),
                "label": predictor.labels[row_top[0]],
                "score": round(row_scores[0], 6),
                "top": [[predictor.labels[c], round(s, 6)] for c, s in zip(row_top, row_scores)],
            }
            if json_output:
                emit_json(record)  # streamed: a pipeline sees each line as soon as it is known
            else:
                rows.append([record["path"], record["label"], f"{record['score']:.3f}",
                             ", ".join(f"{label} {s:.2f}" for label, s in record["top"][1:])])
    if not json_output and rows:
        print_table(None, ["path", "label", "score", "next"], rows)
    bad.check(len(files) + len(skipped), limit)


def evaluate(
    run_dir: Path = typer.Argument(..., help="A trained run folder (or its model/ folder)."),
    data: Path = typer.Argument(..., help="Class folders or a CSV manifest (path,label)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding threads."),
    confusion: Optional[Path] = typer.Option(None, "--confusion", help="Picture of the confusion matrix (.svg or "
                                             ".png); default RUN_DIR/confusion.svg."),
    max_bad: str = typer.Option("5%", "--max-bad", help="Exit 2 if more unreadable files than this."),
    json_output: bool = typer.Option(False, "--json", help="The whole report as one JSON object."),
) -> None:
    import numpy as np
    import torch

    from tlcli.data.images import load_images
    from tlcli.data.sources import BadFiles, load_labelled, parse_max_bad
    from tlcli.errors import UsageError
    from tlcli.evaluation import classification_report, write_confusion_picture
    from tlcli.output import emit_json, info, print_table

    limit = parse_max_bad(max_bad)
    predictor = load_run_predictor(run_dir, device)
    samples = load_labelled(data)
    index_of = {label: i for i, label in enumerate(predictor.labels)}
    unknown = sorted({s.label for s in samples} - set(index_of))
    if unknown:
        raise UsageError(f"{data}: labels the model does not know: {', '.join(unknown[:5])}; the model knows "
                         f"{', '.join(predictor.labels[:10])}")
    bad = BadFiles()
    all_probs, targets = [], []
    decoded = load_images([s.path for s in samples], transform=predictor.transform, workers=workers)
    for batch in _batches(decoded, batch_size):
        good = [(i, r) for i, r in batch if not isinstance(r, Exception)]
        for _, result in batch:
            if isinstance(result, Exception):
                bad.add(result)
        if good:
            all_probs.append(predictor.predict(torch.stack([t for _, t in good])).numpy())
            targets.extend(index_of[samples[i].label] for i, _ in good)
    bad.check(len(samples), limit)
    if not targets:
        raise UsageError(f"{data}: no readable images to evaluate")
    report = classification_report(np.concatenate(all_probs), np.asarray(targets), list(predictor.labels))
    picture = confusion or (run_dir / "confusion.svg")
    write_confusion_picture(report["confusion"], report["labels"], picture)
    report["confusion_picture"] = str(picture)
    report["bad_files"] = bad.summary()
    if json_output:
        emit_json(report)
        return
    top_k = next(key for key in report if key.startswith("top") and key != "top1")
    print_table(f"{run_dir}: {report['n']} images", ["top1", top_k, "mean per-class recall"],
                [[f"{report['top1']:.4f}", f"{report[top_k]:.4f}", f"{report['mean_per_class_recall']:.4f}"]])
    print_table("per class", ["label", "precision", "recall", "support"],
                [[c["label"], f"{c['precision']:.3f}", "-" if c["recall"] is None else f"{c['recall']:.3f}",
                  c["support"]] for c in report["per_class"]])
    info(f"confusion matrix written to {picture}")
