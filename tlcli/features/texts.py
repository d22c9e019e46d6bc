"""Text-embedding rows, keyed by the text's content (sha256) under one folder per model: shards of a
safetensors file of rows and a JSON list of the keys they hold (the image features, beside in
``images.py``, keep one file per row; a text's row is small and many are written at once). Only the rows a
call asks for are read; a row that is not a finite unit vector of the model's recorded width is reported
and computed again. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tlcli.runs.paths import atomic_write_bytes, atomic_write_text


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def index_shards(folder: Path) -> dict[str, tuple[Path, int]]:
    """text hash -> (shard file, row), from the shards' JSON key lists only (no vectors read)."""
    out: dict[str, tuple[Path, int]] = {}
    if not folder.is_dir():
        return out
    for index_file in sorted(folder.glob("*.json")):
        try:
            keys = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(keys, list):
            data_file = index_file.with_suffix(".safetensors")
            out.update((key, (data_file, row)) for row, key in enumerate(keys) if isinstance(key, str))
    return out


def read_rows(data_file: Path, rows: list[int]) -> np.ndarray | None:
    """Just these rows of one shard, or None when the shard is unreadable or shorter than its key list."""
    from safetensors import safe_open

    try:
        with safe_open(str(data_file), framework="np") as handle:
            vectors = handle.get_slice("embeddings")
            count = vectors.get_shape()[0]
            if max(rows) >= count:
                return None
            low, high = min(rows), max(rows) + 1
            block = vectors[low:high]
    except Exception:  # safetensors raises its own types for torn or foreign files
        return None
    return np.asarray(block)[[r - low for r in rows]]


WIDTH_FILE = "width"  # the model's embedding width, written with its first shard


def recorded_width(folder: Path) -> int | None:
    try:
        width = json.loads((folder / WIDTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return width if isinstance(width, int) and not isinstance(width, bool) and 0 < width < 1_000_000 else None


def unit_row(vector: np.ndarray) -> bool:
    """A cached embedding as written: one finite, L2-normalised float row."""
    if vector.ndim != 1 or vector.shape[0] == 0 or not np.isfinite(vector).all():
        return False
    return abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-3


def write_shard(folder: Path, keys: list[str], rows: np.ndarray) -> None:
    from safetensors.numpy import save

    folder.mkdir(parents=True, exist_ok=True)
    if recorded_width(folder) != rows.shape[1]:
        atomic_write_text(folder / WIDTH_FILE, json.dumps(int(rows.shape[1])))
    name = hashlib.sha256("".join(keys).encode()).hexdigest()[:24]
    # Data first, index second: a shard whose index exists is complete.
    atomic_write_bytes(folder / f"{name}.safetensors", save({"embeddings": np.ascontiguousarray(rows)}))
    atomic_write_text(folder / f"{name}.json", json.dumps(keys))
