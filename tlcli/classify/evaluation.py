"""Classification metrics and a confusion-matrix picture (SVG written by hand, PNG through PIL)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np


# The four metrics every evaluation reports, at the top of a summary's "metrics".
METRIC_KEYS = ("accuracy", "top5_accuracy", "mean_recall", "per_class")


def top_indices(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` largest values, largest first (ties: the lower index first)."""
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def classifier_records(probs: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """The output contract's classifier fields for each row of ``probs``: ``{"label", "score", "top":
    [{"label", "score"}, ...]}`` with the ``k`` best labels, best first (scores rounded to 6 places)."""
    probs = np.asarray(probs, dtype=np.float64)
    k = max(1, min(k, probs.shape[1]))
    top = top_indices(probs, k)
    records = []
    for row, indices in zip(probs, top):
        best = [{"label": labels[int(j)], "score": round(float(row[j]), 6)} for j in indices]
        records.append({"label": best[0]["label"], "score": best[0]["score"], "top": best})
    return records


def classification_report(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """The output contract's metrics: ``accuracy`` (top-1), ``top5_accuracy`` (top-min(5, classes)),
    ``mean_recall`` (over classes present), ``per_class`` ``{label: {precision, recall, support}}`` (recall
    null for a class with no samples), plus ``n`` (samples), ``labels`` and ``confusion`` (rows: true label,
    columns: predicted)."""
    probs = np.asarray(probs)
    targets = np.asarray(targets, dtype=np.int64)
    n_classes = len(labels)
    n = int(len(targets))
    top = top_indices(probs, min(5, n_classes)) if n else np.zeros((0, 1), dtype=np.int64)
    predicted = top[:, 0] if n else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (targets, predicted), 1)
    per_class = {}
    for i, label in enumerate(labels):
        support = int(confusion[i].sum())
        predicted_as = int(confusion[:, i].sum())
        per_class[label] = {
            "precision": float(confusion[i, i] / predicted_as) if predicted_as else 0.0,
            "recall": float(confusion[i, i] / support) if support else None,
            "support": support,
        }
    recalls = [c["recall"] for c in per_class.values() if c["recall"] is not None]
    return {
        "accuracy": float((predicted == targets).mean()) if n else 0.0,
        "top5_accuracy": float((top == targets[:, None]).any(axis=1).mean()) if n else 0.0,
        "mean_recall": float(np.mean(recalls)) if recalls else 0.0,
        "per_class": per_class,
        "n": n,
        "labels": list(labels),
        "confusion": confusion.tolist(),
    }


# Probabilities below this count as this (float32 softmax underflows to 0; -log(0) would be inf).
_SMALLEST_PROBABILITY = float(np.finfo(np.float32).tiny)


def top_losses(probs: np.ndarray, targets: np.ndarray, labels: list[str], n: int) -> list[dict]:
    """The ``n`` inputs the model gets most wrong, worst first: the highest cross-entropy loss
    ``-log p(true class)`` (fastai's ``ClassificationInterpretation.top_losses``; ties in input order).
    Each: ``{"index", "loss", "true_label", "true_score", "label", "score"}`` (``label``/``score``: the
    predicted class and its probability, as in a prediction line)."""
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if not len(targets) or n <= 0:
        return []
    true_score = probs[np.arange(len(targets)), targets]
    losses = -np.log(np.maximum(true_score, _SMALLEST_PROBABILITY))
    predicted = top_indices(probs, 1)[:, 0]
    worst = np.argsort(-losses, kind="stable")[:n]
    return [{"index": int(i), "loss": round(float(losses[i]), 6), "true_label": labels[int(targets[i])],
             "true_score": round(float(true_score[i]), 6), "label": labels[int(predicted[i])],
             "score": round(float(probs[i, predicted[i]]), 6)} for i in worst]


def show_top_losses(report, items: list[str], key: str, probs: np.ndarray, targets: np.ndarray,
                    labels: list[str], n: int) -> list[dict]:
    """``evaluate --top-losses N``: one record each (``{key: item, "true_label", "label", "score",
    "true_score", "loss"}``, ``key`` ``path`` or ``text``) and a table for people. Returns the records."""
    records = []
    for found in top_losses(probs, targets, labels, n):
        record = {key: items[found["index"]], **{k: found[k] for k in ("true_label", "label", "score",
                                                                          "true_score", "loss")}}
        report.record(record)
        records.append(record)
    if records:
        shown = (lambda t: " ".join(t.split())[:60]) if key == "text" else str
        report.table(f"top {len(records)} losses", [key, "true label", "predicted", "p(true)", "loss"],
                     [[shown(r[key]), r["true_label"], f"{r['label']} ({r['score']:.2f})", f"{r['true_score']:.3f}",
                       f"{r['loss']:.3f}"] for r in records])
    return records


def write_confusion_picture(confusion: list[list[int]], labels: list[str], path: Path) -> Path:
    """An SVG (or PNG by suffix) of the matrix. A folder that does not exist is a usage error (one line)."""
    from tlcli.console.errors import UsageError

    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"--confusion {path}: folder {path.parent} does not exist; create it or pick another path")
    if path.suffix.lower() not in (".svg", ".png"):
        raise UsageError(f"--confusion {path}: expected a .svg or .png file name")
    if path.suffix.lower() == ".png":
        _write_png(np.asarray(confusion), labels, path)
    else:
        path.write_text(confusion_svg(np.asarray(confusion), labels), encoding="utf-8")
    return path


def _shade(value: int, row_total: int) -> tuple[int, int, int]:
    share = value / row_total if row_total else 0.0
    level = int(255 - 200 * share)
    return (level, level, 255)


def confusion_svg(confusion: np.ndarray, labels: list[str]) -> str:
    cell, margin = 36, 12 + 7 * max(len(label) for label in labels)
    n = len(labels)
    size = margin + n * cell + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 20}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{margin}" y="12">predicted →</text>']
    for i in range(n):
        row_total = int(confusion[i].sum())
        y = margin + i * cell
        parts.append(f'<text x="{margin - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{escape(labels[i])}</text>')
        for j in range(n):
            x = margin + j * cell
            r, g, b = _shade(int(confusion[i, j]), row_total)
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({r},{g},{b})" '
                         f'stroke="#888"/>')
            parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle">'
                         f'{int(confusion[i, j])}</text>')
    for j in range(n):
        x = margin + j * cell + cell / 2
        parts.append(f'<text x="{x}" y="{margin - 6}" text-anchor="start" '
                     f'transform="rotate(-45 {x} {margin - 6})">{escape(labels[j])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _write_png(confusion: np.ndarray, labels: list[str], path: Path) -> None:
    from PIL import Image, ImageDraw

    cell, margin = 36, 12 + 7 * max(len(label) for label in labels)
    n = len(labels)
    image = Image.new("RGB", (margin + n * cell + 10, margin + n * cell + 10), "white")
    draw = ImageDraw.Draw(image)
    for i in range(n):
        row_total = int(confusion[i].sum())
        draw.text((4, margin + i * cell + cell // 2 - 5), labels[i], fill="black")
        draw.text((margin + i * cell + 2, 4), labels[i][:5], fill="black")
        for j in range(n):
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell, margin + (i + 1) * cell)
            draw.rectangle(box, fill=_shade(int(confusion[i, j]), row_total), outline=(136, 136, 136))
            draw.text((box[0] + 10, box[1] + 12), str(int(confusion[i, j])), fill="black")
    image.save(path)


def metrics_summary(scored: dict) -> dict:
    """A classification report in the summary's layout: the four metrics under ``metrics``, the rest
    (``n``, ``labels``, ``confusion``, ``confusion_picture``) beside."""
    return {"metrics": {key: scored[key] for key in METRIC_KEYS if key in scored},
            **{key: value for key, value in scored.items() if key not in METRIC_KEYS}}


def show_metrics(report, title: str, scored: dict) -> None:
    """The metrics for people: the three numbers, then per class."""
    report.table(title, ["accuracy", "top-5 accuracy", "mean recall"],
                 [[f"{scored['accuracy']:.4f}", f"{scored['top5_accuracy']:.4f}", f"{scored['mean_recall']:.4f}"]])
    report.table("per class", ["label", "precision", "recall", "support"],
                 [[label, f"{c['precision']:.3f}", "-" if c["recall"] is None else f"{c['recall']:.3f}",
                   c["support"]] for label, c in scored["per_class"].items()])
