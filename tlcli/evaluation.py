"""Classification metrics and a confusion-matrix picture (SVG written by hand, PNG through PIL)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np


def classification_report(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """Top-1/top-5 accuracy, mean per-class recall, per-class precision/recall/support, confusion matrix
    (rows: true label, columns: predicted)."""
    n_classes = len(labels)
    predicted = probs.argmax(axis=1)
    k = min(5, n_classes)
    top_k = np.argsort(-probs, axis=1)[:, :k]
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (targets, predicted), 1)
    per_class = []
    for i, label in enumerate(labels):
        support = int(confusion[i].sum())
        predicted_as = int(confusion[:, i].sum())
        per_class.append({
            "label": label, "support": support,
            "precision": float(confusion[i, i] / predicted_as) if predicted_as else 0.0,
            "recall": float(confusion[i, i] / support) if support else None,
        })
    recalls = [c["recall"] for c in per_class if c["recall"] is not None]
    return {
        "n": int(len(targets)),
        "top1": float((predicted == targets).mean()) if len(targets) else 0.0,
        f"top{k}": float((top_k == targets[:, None]).any(axis=1).mean()) if len(targets) else 0.0,
        "mean_per_class_recall": float(np.mean(recalls)) if recalls else 0.0,
        "per_class": per_class,
        "labels": labels,
        "confusion": confusion.tolist(),
    }


def write_confusion_picture(confusion: list[list[int]], labels: list[str], path: Path) -> Path:
    path = Path(path)
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
