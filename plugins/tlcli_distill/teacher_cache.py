"""Teacher outputs per image, cached on disk and keyed by content: a second run over the same images (or a
resume) never runs the teacher on their clean views again.

The layout is the feature cache's (``<TLCLI_HOME>/features/<key>/<aa>/<sha256 of the file>.npy``, float32,
loaded with ``allow_pickle=False``, ``meta.json`` describing the key); the key hashes the teacher (its
exported files, or the CLIP model's key with the labels and templates), so another teacher, other labels
or changed image bytes read other entries and nothing is ever invalidated in place.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tlcli.paths import atomic_write_bytes, atomic_write_text, cache_dir


def content_digest(path: Path) -> str | None:
    """sha256 of the file's bytes; None when unreadable (the decoder then reports why)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def digests_of(paths: list[Path], workers: int = 4) -> list[str | None]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(content_digest, paths))


class TeacherCache:
    """``get``/``put`` one row of teacher logits per image digest; disabled, it stores nothing."""

    def __init__(self, key: str, meta: dict, enabled: bool = True):
        self.enabled = enabled
        self.root = cache_dir("features") / f"teacher-{key}"
        self.hits = self.writes = 0
        if enabled and not (self.root / "meta.json").exists():
            atomic_write_text(self.root / "meta.json", json.dumps(meta, indent=1, default=str))

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.npy"

    def get(self, digest: str | None) -> np.ndarray | None:
        if not self.enabled or digest is None:
            return None
        row = _load(self._path(digest))
        self.hits += row is not None
        return row

    def put(self, digest: str | None, row: np.ndarray) -> None:
        if not self.enabled or digest is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(row, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self._path(digest), buffer.getvalue())
        self.writes += 1

    def get_named(self, name: str) -> np.ndarray | None:
        """A per-teacher array (a CLIP teacher's label head), or None."""
        return _load(self.root / f"{name}.npy") if self.enabled else None

    def put_named(self, name: str, array: np.ndarray) -> None:
        if self.enabled:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
            atomic_write_bytes(self.root / f"{name}.npy", buffer.getvalue())


def _load(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # missing or torn: compute again
        return None
