"""Teacher outputs per image, kept in the core feature cache (tlcli/features/images.py), keyed by content: a second
run over the same images (or a resume) never runs the teacher on their clean views again.

The teacher plays the encoder: its ``key`` hashes the teacher (its exported files, or the CLIP model's key
with the labels and templates) and a row is its logits over the classes. Another teacher, other labels or
changed image bytes read other entries; nothing is ever invalidated in place.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlcli.features.images import FeatureCache, content_digest
from tlcli.runs.paths import atomic_write_bytes
from tlcli.runs.run import is_main_process


def digests_of(paths: list[Path], workers: int = 4) -> list[str | None]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(content_digest, paths))


@dataclass
class _TeacherAsEncoder:
    """What FeatureCache needs to know of an encoder."""

    key: str
    spec: dict
    embed_dim: int


class TeacherCache(FeatureCache):
    """``get``/``put`` (then ``flush``) one row of teacher logits per image digest; ``hits`` counts reads.

    With ``features`` (their width), a row is the logits followed by the teacher's penultimate features,
    under another key: entries written without features are never read as if they had them, nor these
    as logits alone.
    """

    def __init__(self, key: str, meta: dict, width: int, enabled: bool = True, features: int = 0):
        name = f"teacher-{key}" if not features else f"teacher-{key}-features-{features}"
        meta = meta if not features else {**meta, "logits": width, "features": features}
        super().__init__(_TeacherAsEncoder(name, meta, width + features), enabled)
        self.classes, self.features = width, features
        self.hits = 0
        # Under torchrun every rank computes the same rows; rank 0 alone writes them (the writes are
        # atomic, so two writers could not tear a row, but they would race for nothing).
        self.writes = is_main_process()

    def put(self, digest: str | None, row: np.ndarray) -> None:
        if self.writes:
            super().put(digest, row)

    def get(self, digest: str | None) -> np.ndarray | None:
        row = super().get(digest)
        self.hits += row is not None
        return row

    def get_named(self, name: str) -> np.ndarray | None:
        """A per-teacher array (a CLIP teacher's label head), or None."""
        if not self.enabled:
            return None
        try:
            return np.load(self.root / f"{name}.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError):  # missing or torn: compute again
            return None

    def put_named(self, name: str, array: np.ndarray) -> None:
        if self.enabled and self.writes:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
            atomic_write_bytes(self.root / f"{name}.npy", buffer.getvalue())
