"""`tlcli text` jobs: zero-shot by label similarity, the logistic-regression probe, predict and evaluate."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from tlcli.data.labelled import training_classes
from tlcli.errors import UsageError
from tlcli.models.text import Embedder
from tlcli.output import display_path, emit_json, info, print_table
from tlcli.paths import CONFIG_FILE, METRICS_FILE, MODEL_DIR, atomic_write_text, new_run_dir

PROBE_KIND = "text-probe"


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def emit_predictions(texts: list[str], labels: list[str], scores: np.ndarray, top: int, json_output: bool,
                     score_name: str = "score") -> None:
    """One line per text, in order: {text, label, score, top: [{label, score}...]} (or a table)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    if json_output:
        for i, text in enumerate(texts):
            best = int(order[i, 0])
            emit_json({"text": text, "label": labels[best], "score": round(float(scores[i, best]), 6),
                       "top": [{"label": labels[j], "score": round(float(scores[i, j]), 6)} for j in order[i]]})
        return
    rows = []
    for i, text in enumerate(texts):
        best = int(order[i, 0])
        rows.append([_short(text), labels[best], f"{scores[i, best]:.3f}",
                     ", ".join(labels[j] for j in order[i, 1:])])
    print_table(None, ["text", "label", score_name, "next"], rows)


def zero_shot_scores(embedder: Embedder, texts: list[str], labels: list[str], template: str) -> np.ndarray:
    """Cosine similarity of each text to each label sentence: (len(texts), len(labels))."""
    label_vectors = embedder.encode([template.format(label) for label in labels])
    return embedder.encode(texts) @ label_vectors.T


def run_zeroshot(texts, labels, template, model, top, batch_size, device, json_output) -> None:
    embedder = Embedder(model, device=device, batch_size=batch_size)
    scores = zero_shot_scores(embedder, texts, labels, template)
    emit_predictions(texts, labels, scores, min(top, len(labels)), json_output, score_name="cosine")


# --- probe ------------------------------------------------------------------------------------------

def _split(data: Path, val: Path | None, val_split: float, seed: int):
    from tlcli.data.labelled import stratified_split
    from tlcli_text.inputs import read_labelled_texts

    samples = read_labelled_texts(data)
    if val is not None:
        train, held_out = samples, read_labelled_texts(val)
    else:
        train, held_out = stratified_split(samples, val_split, seed)
    classes = training_classes(train, held_out, data, items="rows")
    if not held_out:
        raise UsageError(f"{display_path(data)}: no validation rows; use more data or a larger --val-split")
    return train, held_out, classes


def run_probe(data, val, val_split, model, decays, seed, batch_size, device, out, json_output, quiet) -> dict:
    import time

    from tlcli_text.probe import DEFAULT_WEIGHT_DECAYS, accuracy, fit_logistic, sweep_weight_decay

    started = time.time()
    train, held_out, classes = _split(Path(data), val, val_split, seed)
    index = {c: i for i, c in enumerate(classes)}
    embedder = Embedder(model, device=device, batch_size=batch_size)
    if not quiet:
        info(f"embedding {len(train) + len(held_out)} texts with {model}")
    train_x = embedder.encode([s.text for s in train])
    val_x = embedder.encode([s.text for s in held_out])
    train_y = np.array([index[s.label] for s in train])
    val_y = np.array([index[s.label] for s in held_out])
    best_decay, sweep = sweep_weight_decay(train_x, train_y, val_x, val_y, len(classes),
                                           decays or DEFAULT_WEIGHT_DECAYS)
    val_head = fit_logistic(train_x, train_y, len(classes), best_decay)
    val_accuracy = accuracy(val_head, val_x, val_y)
    # The exported head sees every labelled row, with the weight decay chosen on validation.
    head = fit_logistic(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]), len(classes), best_decay)

    run_dir = new_run_dir("text-probe", out)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"data": str(data), "val": str(val) if val else None, "val_split": val_split, "model": model,
              "weight_decays": list(decays or DEFAULT_WEIGHT_DECAYS), "seed": seed}
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=1))
    export_probe(run_dir, head, classes, model, best_decay)
    summary = {
        "run_dir": str(run_dir), "status": "finished", "val_accuracy": val_accuracy, "weight_decay": best_decay,
        "sweep": sweep, "classes": classes, "train_texts": len(train), "val_texts": len(held_out),
        "model": model, "dim": int(train_x.shape[1]), "wall_s": round(time.time() - started, 2),
    }
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(summary, indent=1))
    if json_output:
        emit_json(summary)
    else:
        print_table("text probe finished", ["run", "val acc", "weight decay", "train / val", "classes"],
                    [[str(run_dir), f"{val_accuracy:.4f}", f"{best_decay:g}", f"{len(train)} / {len(held_out)}",
                      len(classes)]])
    return summary


def export_probe(run_dir: Path, head, classes: list[str], model: str, weight_decay: float) -> Path:
    """run_dir/model/: head.safetensors (weight, bias), labels.json, preprocessing.json, model.json; atomic."""
    from safetensors.numpy import save_file

    final = Path(run_dir) / MODEL_DIR
    tmp = Path(run_dir) / f".{MODEL_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({"weight": np.ascontiguousarray(head.weight), "bias": np.ascontiguousarray(head.bias)},
              str(tmp / "head.safetensors"), metadata={"format": "np", "tlcli_model": model})
    (tmp / "labels.json").write_text(json.dumps(classes, ensure_ascii=False, indent=1), encoding="utf-8")
    (tmp / "preprocessing.json").write_text(json.dumps({"embedding_model": model, "normalize": True}, indent=1),
                                            encoding="utf-8")
    (tmp / "model.json").write_text(json.dumps({"kind": PROBE_KIND, "plugin": "text", "model": model,
                                                "num_classes": len(classes), "weight_decay": weight_decay,
                                                "format": 1}, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _model_dir(run_dir: Path, kind: str, command: str) -> Path:
    run_dir = Path(run_dir)
    folder = run_dir if (run_dir / "model.json").is_file() else run_dir / MODEL_DIR
    meta_file = folder / "model.json"
    if not meta_file.is_file():
        raise UsageError(f"{display_path(run_dir)}: no model/model.json; pass the folder of a finished {command} run")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("kind") != kind:
        raise UsageError(f"{display_path(run_dir)}: holds a {meta.get('kind')!r} model, not a {command} run")
    return folder


def load_probe(run_dir: Path):
    """(head, labels, embedding model name) of a probe run."""
    from safetensors.numpy import load_file

    from tlcli_text.probe import LinearHead

    folder = _model_dir(run_dir, PROBE_KIND, "tlcli text probe")
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "head.safetensors"))
    return LinearHead(tensors["weight"], tensors["bias"]), labels, meta["model"]


def run_predict(run_dir, texts, top, device, json_output) -> None:
    head, labels, model = load_probe(run_dir)
    probabilities = head.probabilities(Embedder(model, device=device).encode(texts))
    emit_predictions(texts, labels, probabilities, min(top, len(labels)), json_output, score_name="prob")


def run_evaluate(run_dir, data, device, json_output) -> dict:
    from tlcli_text.inputs import read_labelled_texts

    head, labels, model = load_probe(run_dir)
    samples = read_labelled_texts(Path(data))
    predicted = head.logits(Embedder(model, device=device).encode([s.text for s in samples])).argmax(axis=1)
    result = accuracy_report([s.label for s in samples], [labels[i] for i in predicted])
    if json_output:
        emit_json(result)
    else:
        print_table(f"accuracy {result['accuracy']:.4f} on {result['n']} texts", ["class", "n", "accuracy"],
                    [[c, v["n"], f"{v['accuracy']:.4f}"] for c, v in result["per_class"].items()])
    return result


def accuracy_report(gold: list[str], predicted: list[str]) -> dict:
    per_class: dict[str, dict] = {}
    for g, p in zip(gold, predicted):
        entry = per_class.setdefault(g, {"n": 0, "correct": 0})
        entry["n"] += 1
        entry["correct"] += int(g == p)
    for entry in per_class.values():
        entry["accuracy"] = entry["correct"] / entry["n"]
    correct = sum(int(g == p) for g, p in zip(gold, predicted))
    return {"accuracy": correct / len(gold) if gold else 0.0, "n": len(gold),
            "per_class": dict(sorted(per_class.items()))}
