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
from typing import Literal, Optional

from tlcli.cli.command import Command
from tlcli.fields import TOP_K, Device, ImageColumns, MaxBadShare, TextColumns, option

PREDICT_HELP = """Classify images (or texts, for a text run) with a trained run.

PATHS are files, folders (recursive), tables (.parquet, .arrow, a save_to_disk folder[:SPLIT], hf:NAME[:SPLIT];
a dataset dictionary's test split unless one is named) or - (one path per line on stdin); for a text run,
texts or - (one text per line on stdin). With --json, one line per input ({"path" or "text", "label", "score", "top"}),
then the summary. RUN_DIR may also be a file `tlcli export` wrote: an .onnx file runs in ONNX Runtime, a
.pt file in TorchScript, with the preprocessing its metadata describes."""

EVALUATE_HELP = """Measure a trained run on labelled data: accuracy, per-class recall, confusion matrix.

Prints accuracy, top-5 accuracy, mean recall and per-class precision/recall, and writes the confusion
matrix as a picture (SVG or PNG). DATA is class folders, a CSV manifest or a table for an image run, a
CSV/JSONL of text,label or a table for a text run (a dataset dictionary: its test split unless DATA names one;
see docs/data.md). RUN_DIR may also be a file `tlcli export` wrote (.onnx, .pt). With --json, one line: the
summary, whose "metrics" hold accuracy, top5_accuracy, mean_recall and per_class; with --top-losses N, first
one line per input the model gets most wrong ({"path" or "text", "true_label", "label", "score", "true_score",
"loss"}), worst first."""


class _RunInput(Device):
    run_dir: str = option(..., "A trained run folder (or its model/ folder), or a file `tlcli export` wrote "
                          "(.onnx, .pt).", argument=True, metavar="RUN_DIR", missing="pass a trained run folder")
    backend: Literal["auto", "torch", "onnxruntime"] = option(
        "auto", "auto | torch | onnxruntime (auto: ONNX Runtime for an .onnx file, torch otherwise).")
    batch_size: int = option(64, "Inputs per forward pass.", short="-b", ge=1)
    max_bad: MaxBadShare = option(0.05, "Exit 2 when more input files than this are unreadable: a share (5%, "
                                  "0.05) or a count.")


class PredictConfig(_RunInput):
    image_column: str | None = ImageColumns.model_fields["image_column"]
    paths: list[str] = option(..., "Image files, folders, or - for paths on stdin (texts for a text run).",
                              argument=True, metavar="PATHS", missing="pass image files, folders, or - for stdin")
    top_k: int = option(TOP_K, "How many labels to list per input.", short="-k", ge=1)


class EvaluateConfig(ImageColumns, TextColumns, _RunInput):
    data: str = option(..., "Class folders, a CSV manifest (path,label) or a table; text,label for a text run.",
                       argument=True, metavar="DATA", missing="pass labelled data")
    confusion: str | None = option(None, "Picture of the confusion matrix (.svg or .png); default "
                                   "RUN_DIR/confusion.svg for an image run (FILE-confusion.svg beside an "
                                   "exported file).")
    top_losses: int | None = option(None, "Also list the N inputs the model gets most wrong (highest loss): path "
                                    "or text, true label, predicted label, probability of the true class.", ge=1,
                                    metavar="N")


PREDICT = Command("predict", PredictConfig, "tlcli.cli.predict:run_predict", PREDICT_HELP, kind="tool",
                  examples=("tlcli predict runs/finetune-20261123-101500 photos/ --top-k 3",
                            "find shots -name '*.jpg' | tlcli predict runs/my-run - --json > predictions.jsonl"))
EVALUATE = Command("evaluate", EvaluateConfig, "tlcli.cli.predict:run_evaluate", EVALUATE_HELP, kind="tool",
                   examples=("tlcli evaluate runs/finetune-20261123-101500 test/ --confusion confusion.svg",))


def load_predictor(path: Path, device: str, backend: str = "auto"):
    """The predictor of a run folder (the plugin that made it loads it, in torch) or of an exported file
    (ONNX Runtime for .onnx, torch for TorchScript; preprocessing from the file's metadata)."""
    from tlcli.export.runtime import choose_backend, exported_format, load_exported

    fmt = exported_format(path)
    choose_backend(fmt, backend, path)
    if fmt is not None:
        return load_exported(path, fmt, device)
    return load_run_predictor(path, device)


def load_run_predictor(run_dir: Path, device: str):
    """The predictor of a run folder (or of its model/ folder), loaded by the plugin that made it."""
    from tlcli.runs.artifacts import read_model
    from tlcli.console.errors import UsageError
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
    from tlcli.console.errors import UsageError

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


def run_predict(cfg: PredictConfig, run, report) -> dict:
    """Classify every input: one record each (streamed with --json), a table for people."""
    from tlcli.data.sources import BadFiles, expand_paths
    from tlcli.data.tables import columns_of
    from tlcli.console.errors import UsageError
    from tlcli.classify.evaluation import classifier_records
    from tlcli.console.output import display_path

    run_dir = Path(cfg.run_dir)
    predictor = load_predictor(run_dir, cfg.device, cfg.backend)
    if is_text(predictor):
        n = _text_module().predict_texts(predictor, cfg.paths, cfg.top_k, report)
        return {"status": "finished", "run_dir": str(run_dir), "predicted": n}
    files, skipped = expand_paths(cfg.paths, columns=columns_of(cfg), default_split="test")
    bad = BadFiles()
    bad.extend(skipped)
    if not files and not skipped:
        raise UsageError("no images found in the given paths; pass image files, folders, or - with paths on stdin")
    rows = []
    for indices, probs in _image_probabilities(predictor, files, cfg.batch_size, cfg.workers, bad):
        for index, fields in zip(indices, classifier_records(probs, list(predictor.labels), cfg.top_k)):
            record = {"path": display_path(files[index]), **fields}
            report.record(record)  # streamed: a pipeline sees each line as soon as it is known
            rows.append([record["path"], record["label"], f"{record['score']:.3f}",
                         ", ".join(f"{t['label']} {t['score']:.2f}" for t in record["top"][1:])])
    if rows:
        report.table(None, ["path", "label", "score", "next"], rows)
    bad.check(len(files) + len(skipped), cfg.max_bad)
    return {"status": "finished", "run_dir": str(run_dir), "predicted": len(rows), "bad_files": bad.summary()}


def _check_confusion_path(path: Optional[Path]) -> None:
    """``--confusion`` into a missing folder (or with another suffix) is refused before any work."""
    from tlcli.console.errors import UsageError

    if path is None:
        return
    if not Path(path).parent.is_dir():
        raise UsageError(f"--confusion {path}: folder {Path(path).parent} does not exist; create it or pick another path")
    if Path(path).suffix.lower() not in (".svg", ".png"):
        raise UsageError(f"--confusion {path}: expected a .svg or .png file name")


def run_evaluate(cfg: EvaluateConfig, run, report) -> dict:
    """Score the run on labelled data: the summary's ``metrics`` (accuracy, top5_accuracy, mean_recall,
    per_class), the confusion matrix and its picture."""
    import numpy as np

    from tlcli.data.sources import BadFiles, load_labelled
    from tlcli.data.tables import columns_of
    from tlcli.console.errors import UsageError
    from tlcli.classify.evaluation import classification_report, metrics_summary, show_metrics, write_confusion_picture

    run_dir, data = Path(cfg.run_dir), Path(cfg.data)
    confusion = Path(cfg.confusion) if cfg.confusion else None
    _check_confusion_path(confusion)
    predictor = load_predictor(run_dir, cfg.device, cfg.backend)
    if is_text(predictor):
        scored = _text_module().evaluate_texts(predictor, data, report, confusion=confusion,
                                               columns=columns_of(cfg), top_losses=cfg.top_losses or 0)
        return {"status": "finished", "run_dir": str(run_dir), **metrics_summary(scored)}
    bad = BadFiles()
    samples = load_labelled(cfg.data, bad_files=bad, columns=columns_of(cfg), default_split="test")
    skipped = len(bad)  # rows of a table without an image: tried, so counted in the total
    labels = list(predictor.labels)
    index_of = {label: i for i, label in enumerate(labels)}
    unknown = sorted({s.label for s in samples} - set(index_of))
    if unknown:
        raise UsageError(f"{data}: labels the model does not know: {', '.join(unknown[:5])}; the model knows "
                         f"{', '.join(labels[:10])}")
    all_probs, targets, scored_paths = [], [], []
    for indices, probs in _image_probabilities(predictor, [s.path for s in samples], cfg.batch_size, cfg.workers,
                                               bad):
        all_probs.append(probs)
        targets.extend(index_of[samples[i].label] for i in indices)
        scored_paths.extend(samples[i].path for i in indices)
    bad.check(len(samples) + skipped, cfg.max_bad)
    if not targets:
        raise UsageError(f"{data}: no readable images to evaluate")
    scored = classification_report(np.concatenate(all_probs), np.asarray(targets), labels)
    # An exported file: its picture beside it, named after it (model-confusion.svg), never inside it.
    picture = confusion or (run_dir.with_name(f"{run_dir.stem}-confusion.svg") if run_dir.is_file()
                            else run_dir / "confusion.svg")
    try:
        write_confusion_picture(scored["confusion"], scored["labels"], picture)
    except OSError as error:
        raise UsageError(f"--confusion {picture}: cannot write it ({error.strerror or error}); pass "
                         "--confusion PATH in a writable folder") from None
    scored["confusion_picture"] = str(picture)
    show_metrics(report, f"{run_dir}: {scored['n']} images", scored)
    if cfg.top_losses:
        from tlcli.classify.evaluation import show_top_losses
        from tlcli.console.output import display_path

        show_top_losses(report, [display_path(p) for p in scored_paths], "path", np.concatenate(all_probs),
                        np.asarray(targets), labels, cfg.top_losses)
    report.info(f"confusion matrix written to {picture}")
    return {"status": "finished", "run_dir": str(run_dir), **metrics_summary(scored), "bad_files": bad.summary()}
