"""Image features of a CLIP model, cached on disk and shared by zeroshot, probe, coop and compare.

Cache layout: ``<TLCLI_HOME>/features/<model key>/<aa>/<sha256 of the file>.npy`` (float32, loaded with
``allow_pickle=False``) and ``meta.json`` describing the key. The model key hashes the architecture, the
weights' content, the preprocessing and the precision (see tlcli.models.clip), so changing any of them, or
the file's bytes, reads a different entry: nothing is ever invalidated in place, stale entries are just
never read again.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlcli.data.bad_files import BadFiles
from tlcli.data.common import BadImage
from tlcli.data.images import default_workers, load_images
from tlcli.models.clip import ClipModel
from tlcli.paths import atomic_write_bytes, atomic_write_text, cache_dir


@dataclass
class Features:
    array: np.ndarray  # (M, D) float32, not normalised, one row per readable input
    kept: list[int]  # index into the input paths of each row
    cached: int
    computed: int
    wall_s: float = 0.0

    @property
    def features(self):
        """``array`` as a torch tensor (shares memory; imports torch, which a fully cached probe avoids)."""
        import torch

        return torch.from_numpy(self.array)


def content_digest(path: Path) -> str | None:
    """sha256 of the file's bytes; None when it cannot be read (the decoder then reports why)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


class FeatureCache:
    def __init__(self, clip: ClipModel, enabled: bool = True):
        self.enabled = enabled
        self.root = cache_dir("features") / clip.key
        if enabled and not (self.root / "meta.json").exists():
            atomic_write_text(self.root / "meta.json", json.dumps(clip.spec, indent=1))

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.npy"

    def get(self, digest: str | None) -> np.ndarray | None:
        if not self.enabled or digest is None:
            return None
        try:
            return np.load(self._path(digest), allow_pickle=False)
        except (OSError, ValueError):  # missing or torn: compute again
            return None

    def put(self, digest: str | None, row: np.ndarray) -> None:
        if not self.enabled or digest is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(row, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self._path(digest), buffer.getvalue())


def image_features(clip: ClipModel, paths: list[Path], bad: BadFiles, *, batch_size: int = 32,
                   workers: int | None = None, use_cache: bool = True, on_progress=None) -> Features:
    """Features of every readable path, from the cache where possible; bad files go to ``bad``."""
    import time

    started = time.time()
    stats: dict = {}
    kept: list[int] = []
    chunks: list[np.ndarray] = []
    for indices, rows in stream_image_features(clip, paths, bad, batch_size=batch_size, workers=workers,
                                               use_cache=use_cache, on_progress=on_progress, stats=stats):
        kept.extend(indices)
        chunks.append(rows)
    array = np.concatenate(chunks).astype(np.float32, copy=False) if kept \
        else np.zeros((0, clip.embed_dim), dtype=np.float32)
    return Features(array, kept, stats["cached"], stats["computed"], time.time() - started)


def stream_image_features(clip: ClipModel, paths: list[Path], bad: BadFiles, *, batch_size: int = 32,
                          workers: int | None = None, use_cache: bool = True, on_progress=None,
                          stats: dict | None = None):
    """Yield ``(indices, rows (k, D) float32)`` in input order, as soon as every earlier path is done:
    cached rows at once, computed ones batch by batch (so `tlcli zeroshot --json | head` prints while
    the model works). Bad files go to ``bad`` and are skipped. ``stats`` gets ``cached``/``computed``.

    Decoding runs on threads, a batch ahead of the model: the model works on one batch while the next
    is decoded.
    """
    stats = {} if stats is None else stats
    cache = FeatureCache(clip, enabled=use_cache)
    workers = default_workers() if workers is None else workers
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        digests = list(pool.map(content_digest, paths)) if use_cache else [None] * len(paths)
    rows: dict[int, np.ndarray] = {}
    for i, digest in enumerate(digests):
        hit = cache.get(digest)
        if hit is not None:
            rows[i] = hit
    stats["cached"], stats["computed"] = len(rows), 0
    missing = [i for i in range(len(paths)) if i not in rows]
    failed: set[int] = set()
    position = 0  # every path before it has been yielded or skipped

    def ready():
        nonlocal position
        indices = []
        while position < len(paths) and (position in rows or position in failed):
            if position in rows:
                indices.append(position)
            position += 1
        return (indices, np.stack([rows.pop(i) for i in indices]).astype(np.float32, copy=False)) if indices else None

    head = ready()
    if head is not None:
        yield head
    for batch_indices, batch, bad_items in _batches(clip, [paths[i] for i in missing], batch_size, workers):
        for item in bad_items:
            bad.add(item[1])
            failed.add(missing[item[0]])
        if batch is not None:
            out = clip.encode_images(batch).numpy()
            for j, local in enumerate(batch_indices):
                index = missing[local]
                rows[index] = out[j]
                cache.put(digests[index], out[j])
            stats["computed"] += len(batch_indices)
        if on_progress is not None:
            on_progress(stats["cached"] + stats["computed"] + len(failed), len(paths))
        chunk = ready()
        if chunk is not None:
            yield chunk


def _batches(clip: ClipModel, paths: list[Path], batch_size: int, workers: int):
    """Yield ``(indices, tensor batch or None, [(index, BadImage)])``, decoded by a producer thread so the
    model never waits for a whole batch to be decoded after the previous one."""
    if not paths:
        return
    import torch

    out: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    split = clip.split_preprocess  # PIL steps on the decode threads, tensor steps once per batch here
    transform, collate = (split.per_image, split.batch) if split is not None else (clip.preprocess, torch.stack)

    def produce():
        try:
            indices, tensors, bads = [], [], []
            for index, result in load_images(paths, transform=transform, workers=workers):
                if stop.is_set():
                    return
                if isinstance(result, BadImage):
                    bads.append((index, result))
                    continue
                indices.append(index)
                tensors.append(result)
                if len(tensors) == batch_size:
                    out.put((indices, collate(tensors), bads))
                    indices, tensors, bads = [], [], []
            if tensors or bads:
                out.put((indices, collate(tensors) if tensors else None, bads))
            out.put(None)
        except BaseException as error:  # a bug in the transform: re-raised in the consumer
            out.put(error)

    thread = threading.Thread(target=produce, name="tlcli-clip-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get_nowait()
            except queue.Empty:
                pass
            thread.join(0.05)


