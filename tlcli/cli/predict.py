"""`tlcli predict` and `tlcli evaluate` on any trained run folder.

The run's ``model/model.json`` names a model kind; the plugin that registered that kind loads it (see
``Plugin.predictors``), so these commands work for fine-tuned backbones, CLIP probes and CoOp prompts alike.
A predictor with ``modality == "text"`` (a text probe, a prompt-tuned model) is handed to
``tlcli.cli.predict_texts``. Output follows the contract in ARCHITECTURE.md: classifier lines
``{"path", "label", "score", "top": [{"label", "score"}]}`` and metrics ``accuracy``, ``top5_accuracy``,
``mean_recall``, ``per_class``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tlcli.cli import options

PREDICT_HELP = """Classify images (or texts, for a text run) with a trained run.

PATHS are files, folders (recursive) or - (one path per line on stdin); for a text run, texts or - (one
text per line on stdin).

Examples:

  tlcli predict runs/finetune-20261123-101500 photos/ --top-k 3

  find shots -name '*.jpg' | tlcli predict runs/my-run - --json > predictions.jsonl
"""

EVALUATE_HELP = """Measure a trained run on labelled data: accuracy, per-class recall, confusion matrix.

Prints accuracy, top-5 accuracy, mean recall and per-class precision/recall, and writes the confusion
matrix as a picture (SVG or PNG). DATA is class folders or a CSV manifest for an image run, a CSV/JSONL of
text,label for a text run.

Example:

  tlcli evaluate runs/finetune-20261123-101500 test/ --confusion confusion.svg
"""


def register(app: typer.Typer) -> None:
    app.command("predict", help=PREDICT_HELP)(predict)
    app.command("evaluate", help=EVALUATE_HELP)(evaluate)


def load_run_predictor(run_dir: Path, device: str):
    """The predictor of a run folder (or of its model/ folder), loaded by the plugin that made it."""
    from tlcli.artifacts import read_model
    from tlcli.errors import UsageError
    from tlcli.plugin import resolve_target
    from tlcli.registry import load_plugins

    files = read_model(run_dir)
    if files.kind == "backbone":  # a pretrain run: features, no classifier
        raise UsageError(f"{run_dir}: a pretrain run holds a backbone without a classifier; fine-tune it first: "
                         f"tlcli finetune DATA --weights {run_dir}")
    target = load_plugins().predictor_for(files.kind)
    if target is None:
        raise UsageError(f"{run_dir}: no installed plugin loads models of kind {files.kind!r}; see `tlcli plugins`")
    return resolve_target(target)(files.path, device)


def _text_module():
    """``tlcli.cli.predict_texts`` (the text half), or a one-line refusal where it is not installed."""
    from tlcli.errors import UsageError

    try:
        from tlcli.cli import predict_texts
    except ImportError:
        raise UsageError("this is a text run: text runs need the text plugin's predict support "
                         "(tlcli.cli.predict_texts), which is not installed") from None
    return predict_texts


def is_text(predictor) -> bool:
    return getattr(predictor, "modality", "image") == "text"


def _batches(indexed_items, batch_size: int):
    batch = []
    for item in indexed_items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _image_probabilities(predictor, paths: list[Path], batch_size: int, workers: Optional[int], bad):
    """Yield ``(indices, probs (k, C) NumPy)`` batch by batch; unreadable files go to ``bad``."""
    import torch

    from tlcli.data.images import load_images

    decoded = load_images(paths, transform=predictor.transform, workers=workers)
    for batch in _batches(decoded, batch_size):
        good = []
        for index, result in batch:
            if isinstance(result, Exception):
                bad.add(result)
            else:
                good.append((index, result))
        if good:
            probs = predictor.predict(torch.stack([tensor for _, tensor in good]))
            yield [index for index, _ in good], probs.float().numpy()


def predict(
    run_dir: Path = typer.Argument(..., help="A trained run folder (or its model/ folder)."),
    paths: List[str] = typer.Argument(..., help="Image files, folders, or - for paths on stdin (texts for a text run)."),
    top_k: int = options.top_k(),
    batch_size: int = options.batch_size(64, help="Images per forward pass."),
    device: str = options.device(),
    workers: Optional[int] = options.workers(),
    max_bad: str = options.max_bad(),
    json_output: bool = typer.Option(False, "--json", help='JSON Lines: {"path","label","score","top"}.'),
) -> None:
    from tlcli.data.sources import BadFiles, expand_paths, parse_max_bad
    from tlcli.errors import UsageError
    from tlcli.evaluation import classifier_records
    from tlcli.output import display_path, emit_json, print_table

    limit = parse_max_bad(max_bad)
    predictor = load_run_predictor(run_dir, device)
    if is_text(predictor):
        _text_module().predict_texts(predictor, paths, top_k, json_output)
        return
    files, skipped = expand_paths(paths)
    bad = BadFiles()
    bad.extend(skipped)
    if not files and not skipped:
        raise UsageError("no images found in the given paths; pass image files, folders, or - with paths on stdin")
    rows = []
    for indices, probs in _image_probabilities(predictor, files, batch_size, workers, bad):
        for index, fields in zip(indices, classifier_records(probs, list(predictor.labels), top_k)):
            record = {"path": display_path(files[index]), **fields}
            if json_output:
                emit_json(record)  # streamed: a pipeline sees each line as soon as it is known
            else:
                rows.append([record["path"], record["label"], f"{record['score']:.3f}",
                             ", ".join(f"{t['label']} {t['score']:.2f}" for t in record["top"][1:])])
    if not json_output and rows:
        print_table(None, ["path", "label", "score", "next"], rows)
    bad.check(len(files) + len(skipped), limit)


def _check_confusion_path(path: Optional[Path]) -> None:
    """``--confusion`` into a missing folder (or with another suffix) is refused before any work."""
    from tlcli.errors import UsageError

    if path is None:
        return
    if not Path(path).parent.is_dir():
        raise UsageError(f"--confusion {path}: folder {Path(path).parent} does not exist; create it or pick another path")
    if Path(path).suffix.lower() not in (".svg", ".png"):
        raise UsageError(f"--confusion {path}: expected a .svg or .png file name")


def evaluate(
    run_dir: Path = typer.Argument(..., help="A trained run folder (or its model/ folder)."),
    data: Path = typer.Argument(..., help="Class folders or a CSV manifest (path,label); text,label for a text run."),
    batch_size: int = options.batch_size(64, help="Images per forward pass."),
    device: str = options.device(),
    workers: Optional[int] = options.workers(),
    confusion: Optional[Path] = typer.Option(None, "--confusion", help="Picture of the confusion matrix (.svg or "
                                             ".png); default RUN_DIR/confusion.svg for an image run."),
    max_bad: str = options.max_bad(),
    json_output: bool = typer.Option(False, "--json", help="The whole report as one JSON object."),
) -> None:
    import numpy as np

    from tlcli.data.sources import BadFiles, load_labelled, parse_max_bad
    from tlcli.errors import UsageError
    from tlcli.evaluation import classification_report, write_confusion_picture
    from tlcli.output import emit_json, info, print_table

    _check_confusion_path(confusion)
    limit = parse_max_bad(max_bad)
    predictor = load_run_predictor(run_dir, device)
    if is_text(predictor):
        _text_module().evaluate_texts(predictor, data, json_output, confusion=confusion)
        return
    samples = load_labelled(data)
    labels = list(predictor.labels)
    index_of = {label: i for i, label in enumerate(labels)}
    unknown = sorted({s.label for s in samples} - set(index_of))
    if unknown:
        raise UsageError(f"{data}: labels the model does not know: {', '.join(unknown[:5])}; the model knows "
                         f"{', '.join(labels[:10])}")
    bad = BadFiles()
    all_probs, targets = [], []
    for indices, probs in _image_probabilities(predictor, [s.path for s in samples], batch_size, workers, bad):
        all_probs.append(probs)
        targets.extend(index_of[samples[i].label] for i in indices)
    bad.check(len(samples), limit)
    if not targets:
        raise UsageError(f"{data}: no readable images to evaluate")
    report = classification_report(np.concatenate(all_probs), np.asarray(targets), labels)
    picture = confusion or (Path(run_dir) / "confusion.svg")
    try:
        write_confusion_picture(report["confusion"], report["labels"], picture)
    except OSError as error:
        raise UsageError(f"--confusion {picture}: cannot write it ({error.strerror or error}); pass "
                         "--confusion PATH in a writable folder") from None
    report["confusion_picture"] = str(picture)
    report["bad_files"] = bad.summary()
    if json_output:
        emit_json(report)
        return
    print_table(f"{run_dir}: {report['n']} images", ["accuracy", "top-5 accuracy", "mean recall"],
                [[f"{report['accuracy']:.4f}", f"{report['top5_accuracy']:.4f}", f"{report['mean_recall']:.4f}"]])
    print_table("per class", ["label", "precision", "recall", "support"],
                [[label, f"{c['precision']:.3f}", "-" if c["recall"] is None else f"{c['recall']:.3f}",
                  c["support"]] for label, c in report["per_class"].items()])
    info(f"confusion matrix written to {picture}")
