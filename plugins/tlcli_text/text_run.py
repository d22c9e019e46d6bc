"""`tlcli text` jobs: zero-shot by label similarity and the logistic-regression probe (a run folder)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tlcli.data.labelled import training_classes
from tlcli.data.texts import read_labelled_texts
from tlcli.errors import UsageError
from tlcli.models.embedder import Embedder
from tlcli.output import display_path, emit_json, info, print_table

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


def run_zeroshot(texts, labels, template, model, top_k, batch_size, device, json_output) -> None:
    from tlcli.cli.predict_texts import emit_text_predictions

    scores = zero_shot_scores(embedder_for(model, device, batch_size), texts, labels, template)
    emit_text_predictions(texts, labels, scores, top_k, json_output, score_name="cosine")


# --- probe ------------------------------------------------------------------------------------------

def _split(data: Path, val: Path | None, val_split: float, seed: int):
    from tlcli.data.labelled import stratified_split

    samples = read_labelled_texts(data)
    if val is not None:
        train, held_out = samples, read_labelled_texts(val)
    else:
        train, held_out = stratified_split(samples, val_split, seed)
    classes = training_classes(train, held_out, data, items="rows")
    if not held_out:
        raise UsageError(f"{display_path(data)}: no validation rows; use more data or a larger --val-split")
    return train, held_out, classes


def run_probe(options: dict, out: Path | None, overwrite: bool, json_output: bool, quiet: bool) -> dict:
    """Embed, sweep the weight decay on validation data, fit on everything, export ``model/``.

    ``options``: data, val, val_split, model, weight_decays, seed, batch_size, device (saved as config.json).
    The input is read and checked before the run folder exists, so a bad file leaves nothing behind.
    """
    from tlcli import probe
    from tlcli.run import Run

    started = time.time()
    data, val = Path(options["data"]), Path(options["val"]) if options["val"] else None
    train, held_out, classes = _split(data, val, options["val_split"], options["seed"])
    options = {**options, "weight_decays": options.get("weight_decays") or list(probe.WEIGHT_DECAYS)}
    with Run.create("text-probe", out, overwrite=overwrite, plugin="text", config=options) as run:
        run.start({"model": options["model"], "classes": classes, "train_samples": len(train),
                   "val_samples": len(held_out)})
        index = {c: i for i, c in enumerate(classes)}
        embedder = embedder_for(options["model"], options["device"], options["batch_size"])
        if not quiet:
            info(f"embedding {len(train) + len(held_out)} texts with {options['model']}")
        # The encoder's rows are L2-normalised already, as tlcli.probe's head expects.
        train_x = embedder.encode([s.text for s in train])
        val_x = embedder.encode([s.text for s in held_out])
        train_y = np.array([index[s.label] for s in train])
        val_y = np.array([index[s.label] for s in held_out])
        swept = probe.sweep(train_x, train_y, val_x, val_y, len(classes), decays=options["weight_decays"])
        for point in swept.tried:
            run.emit("eval", {"metrics": {"val_accuracy": point["val_accuracy"], "val_loss": point["val_loss"]},
                              "weight_decay": point["weight_decay"], "monitor": "val_accuracy"}, stage="sweep")
        best_decay, val_accuracy, sweep = swept.weight_decay, swept.val_accuracy, swept.tried
        # The exported head sees every labelled row, with the weight decay chosen on validation.
        head = probe.fit(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]), len(classes),
                         best_decay)
        with run.model_writer() as folder:
            export_probe(folder, head, classes, options["model"], best_decay)
        summary = {
            "run_dir": str(run.path), "status": "finished", "val_accuracy": val_accuracy,
            "weight_decay": best_decay, "sweep": sweep, "classes": classes, "train_texts": len(train),
            "val_texts": len(held_out), "model": options["model"], "dim": int(train_x.shape[1]),
            "wall_s": round(time.time() - started, 2),
        }
        run.finish("finished", summary)
    if json_output:
        emit_json(summary)
    else:
        print_table("text probe finished", ["run", "val acc", "weight decay", "train / val", "classes"],
                    [[str(run.path), f"{val_accuracy:.4f}", f"{best_decay:g}", f"{len(train)} / {len(held_out)}",
                      len(classes)]])
    return summary


def export_probe(folder: Path, head, classes: list[str], model: str, weight_decay: float) -> None:
    """``model/``: model.safetensors (weight, bias), labels.json, preprocessing.json, model.json."""
    from tlcli.artifacts import write_model

    weight, bias = head
    write_model(folder, kind=PROBE_KIND, plugin="text", tensors={"weight": weight, "bias": bias},
                labels=classes, preprocessing={"embedding_model": model, "normalize": True}, model=model,
                weight_decay=weight_decay)
