"""The `tlcli text` jobs: zero-shot by label similarity, the logistic-regression probe (a run folder), and
predict / evaluate on a text run. Each writes through the Report: one classifier record per text
``{"text", "label", "score", "top"}`` (a JSON line with --json, a table for people), then the summary."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tlcli.classify.evaluation import metrics_summary
from tlcli.cli.predict_texts import emit_text_predictions, evaluate_texts, predict_texts
from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.data.labelled import training_classes
from tlcli.data.tables import columns_of, default_validation
from tlcli.data.texts import read_labelled_texts, read_texts
from tlcli.models.embedder import Embedder
from tlcli_text.config import ProbeConfig, TextEvaluateConfig, TextPredictConfig, ZeroshotConfig

PROBE_KIND = "text-probe"


def embedder_for(model: str, device: str, batch_size: int | None = None) -> Embedder:
    """The sentence encoder on a concrete device (``auto`` resolved: a GPU when there is one)."""
    from tlcli.device import resolve_device

    return Embedder(model, device=resolve_device(device), batch_size=batch_size or 64)


def label_sentence(template: str, label: str) -> str:
    """``template`` with its one ``{}`` replaced by ``label`` (other braces are literal text)."""
    return template.replace("{}", label, 1)


def zero_shot_scores(embedder: Embedder, texts: list[str], labels: list[str], template: str) -> np.ndarray:
    """Cosine similarity of each text to each label sentence: (len(texts), len(labels))."""
    label_vectors = embedder.encode([label_sentence(template, label) for label in labels])
    return embedder.encode(texts) @ label_vectors.T


def texts_of(cfg) -> list[str]:
    """TEXTS ('-' reads stdin lines) then the texts of --input."""
    return read_texts(list(cfg.texts), Path(cfg.input) if cfg.input else None, columns=columns_of(cfg))


# --- zeroshot -----------------------------------------------------------------------------------------

def zeroshot(cfg: ZeroshotConfig, run, report) -> dict:
    """`tlcli text zeroshot`: each text gets the label whose sentence is nearest (cosine similarity)."""
    texts = texts_of(cfg)
    embedder = embedder_for(cfg.model, cfg.device, cfg.batch_size)
    scores = zero_shot_scores(embedder, texts, list(cfg.labels), cfg.label_template)
    emit_text_predictions(texts, list(cfg.labels), scores, cfg.top_k, report, score_name="cosine")
    return {"status": "finished", "texts": len(texts), "labels": list(cfg.labels), "model": cfg.model}


# --- predict / evaluate on a text run ---------------------------------------------------------------------

def text_predictor(run_dir: str, device: str):
    """The predictor of a text run folder (or of its model/ folder), loaded by the plugin that made it."""
    from tlcli.runs.artifacts import read_model
    from tlcli.plugin import resolve_target
    from tlcli.registry import load_plugins

    files = read_model(Path(run_dir))
    target = load_plugins().predictor_for(files.kind)
    if target is None:
        raise UsageError(f"{display_path(run_dir)}: no installed plugin loads models of kind {files.kind!r}; "
                         "see `tlcli plugins`")
    predictor = resolve_target(target)(files.path, device)
    if getattr(predictor, "modality", "image") != "text":
        raise UsageError(f"{display_path(run_dir)}: an image model; use tlcli predict / tlcli evaluate")
    return predictor


def predict(cfg: TextPredictConfig, run, report) -> dict:
    """`tlcli text predict`: one classifier record per text (as `tlcli predict` on a text run)."""
    count = predict_texts(text_predictor(cfg.run_dir, cfg.device), list(cfg.texts), cfg.top_k, report,
                          Path(cfg.input) if cfg.input else None, columns=columns_of(cfg))
    return {"status": "finished", "texts": count}


def evaluate(cfg: TextEvaluateConfig, run, report) -> dict:
    """`tlcli text evaluate`: the output contract's metrics (accuracy, top5_accuracy, mean_recall,
    per_class) under the summary's ``metrics`` (as `tlcli evaluate` on a text run)."""
    scored = evaluate_texts(text_predictor(cfg.run_dir, cfg.device), Path(cfg.data), report,
                            Path(cfg.confusion) if cfg.confusion else None, columns=columns_of(cfg))
    return {"status": "finished", "texts": scored["n"], **metrics_summary(scored)}


# --- probe ------------------------------------------------------------------------------------------

def _split(cfg: ProbeConfig):
    from tlcli.data.labelled import stratified_split

    data = Path(cfg.data)
    columns = columns_of(cfg)
    samples = read_labelled_texts(data, columns=columns)
    val = cfg.val or default_validation(cfg.data)
    if val is not None:
        train, held_out = samples, read_labelled_texts(Path(val), columns=columns)
    else:
        train, held_out = stratified_split(samples, cfg.val_split, cfg.seed)
    classes = training_classes(train, held_out, data, items="rows")
    if not held_out:
        raise UsageError(f"{display_path(data)}: no validation rows; use more data or a larger --val-split")
    return train, held_out, classes


def probe(cfg: ProbeConfig, run, report) -> dict:
    """`tlcli text probe`: embed, sweep the weight decay on validation data, fit on everything, export
    ``model/``. A bad input fails before the run's first event, so its folder is removed."""
    from tlcli.classify import probe as logistic

    started = time.time()
    train, held_out, classes = _split(cfg)
    decays = list(cfg.weight_decay or logistic.WEIGHT_DECAYS)
    run.start({"model": cfg.model, "classes": classes, "train_samples": len(train), "val_samples": len(held_out)})
    index = {c: i for i, c in enumerate(classes)}
    embedder = embedder_for(cfg.model, cfg.device, cfg.batch_size)
    report.info(f"embedding {len(train) + len(held_out)} texts with {cfg.model}")
    # The encoder's rows are L2-normalised already, as tlcli.classify.probe's head expects.
    train_x = embedder.encode([s.text for s in train])
    val_x = embedder.encode([s.text for s in held_out])
    train_y = np.array([index[s.label] for s in train])
    val_y = np.array([index[s.label] for s in held_out])
    swept = logistic.sweep(train_x, train_y, val_x, val_y, len(classes), decays=decays)
    for point in swept.tried:
        run.emit("eval", {"metrics": {"val_accuracy": point["val_accuracy"], "val_loss": point["val_loss"]},
                          "weight_decay": point["weight_decay"], "monitor": "val_accuracy"}, stage="sweep")
    chosen = next(p for p in swept.tried if p["weight_decay"] == swept.weight_decay)
    # The exported head sees every labelled row, with the weight decay chosen on validation.
    head = logistic.fit(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]), len(classes),
                        swept.weight_decay)
    with run.model_writer() as folder:
        export_probe(folder, head, classes, cfg.model, swept.weight_decay)
    report.table(f"text probe finished: {display_path(run.path)}",
                 ["val accuracy", "weight decay", "train / val", "classes"],
                 [[f"{swept.val_accuracy:.4f}", f"{swept.weight_decay:g}", f"{len(train)} / {len(held_out)}",
                   len(classes)]])
    return {
        "status": "finished",
        "best": {"metric": "val_accuracy", "value": swept.val_accuracy, "step": None},
        "metrics": {"val_accuracy": swept.val_accuracy, "val_loss": chosen["val_loss"]},
        "weight_decay": swept.weight_decay, "sweep": swept.tried, "classes": classes, "train_texts": len(train),
        "val_texts": len(held_out), "model": cfg.model, "dim": int(train_x.shape[1]),
        "wall_s": round(time.time() - started, 2),
    }


def export_probe(folder: Path, head, classes: list[str], model: str, weight_decay: float) -> None:
    """``model/``: model.safetensors (weight, bias), labels.json, preprocessing.json, model.json."""
    from tlcli.runs.artifacts import write_model

    weight, bias = head
    write_model(folder, kind=PROBE_KIND, plugin="text", tensors={"weight": weight, "bias": bias},
                labels=classes, preprocessing={"embedding_model": model, "normalize": True}, model=model,
                weight_decay=weight_decay)
