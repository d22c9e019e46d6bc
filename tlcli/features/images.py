"""Image features of a frozen encoder, cached on disk by content and shared by every command that uses
one (zeroshot, probe, coop, compare, and any plugin with a frozen image tower).

Cache layout: ``<TLCLI_HOME>/features/<encoder key>/<aa>/<sha256 of the file>.npy`` (float32, loaded with
``allow_pickle=False``) and ``meta.json`` describing the key. The encoder key hashes the architecture, the
weights' content, the preprocessing and the precision (see tlcli.models.clip), so changing any of them, or
the file's bytes, reads a different entry: nothing is ever invalidated in place, stale entries are just
never read again.

Rows are checked when read (a 1-D float32 row of the encoder's width, every value finite): a damaged entry
(torn, wrong shape, NaN) is computed again, rewritten and reported, never used.

An encoder is any object with ``key`` (str), ``spec`` (dict, written to meta.json), ``embed_dim``,
``device_name``, ``encode_images(batch) -> (N, D) float32 CPU tensor`` and ``preprocess`` (PIL -> tensor)
or ``split_preprocess`` (see tlcli.models.clip.SplitPreprocess): :class:`tlcli.models.clip.ClipModel` is one.
"""

from __future__ import annotations

import contextlib
import os
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
from tlcli.data.images import ItemProgress, default_workers, load_images
from tlcli.console.output import warn
from tlcli.runs.paths import atomic_write_bytes, atomic_write_text, cache_dir


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
    import stat

    digest = hashlib.sha256()
    try:
        # O_NONBLOCK and a regular-file check on the open descriptor: /dev/zero or a FIFO named on the
        # command line must not be read for ever (the decoder then reports it as not a regular file).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


class FeatureCache:
    """Rows keyed by (encoder key, file content). ``damaged`` counts entries that were present but unusable."""

    def __init__(self, encoder, enabled: bool = True):
        self.enabled = enabled
        self.root = cache_dir("features") / encoder.key
        self.width = int(encoder.embed_dim)
        self.damaged = 0
        self._writes: queue.Queue | None = None
        self._writer: threading.Thread | None = None
        self._error: Exception | None = None
        if enabled and not (self.root / "meta.json").exists():
            atomic_write_text(self.root / "meta.json", json.dumps(encoder.spec, indent=1))

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.npy"

    def get(self, digest: str | None) -> np.ndarray | None:
        """The cached row, or None when there is none or it is damaged (then it is counted in ``damaged``
        and the caller computes it again, which rewrites it)."""
        if not self.enabled or digest is None:
            return None
        try:
            row = np.load(self._path(digest), allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):  # torn or foreign file
            self.damaged += 1
            return None
        if not self.valid(row):
            self.damaged += 1
            return None
        return row

    def valid(self, row: np.ndarray) -> bool:
        return (row.dtype == np.float32 and row.shape == (self.width,) and bool(np.isfinite(row).all()))

    def put(self, digest: str | None, row: np.ndarray) -> None:
        """Queue ``row`` for writing on a background thread (each write fsyncs: ~0.5 ms here, more on
        network or virtual disks, which the model's thread should not wait for); ``flush`` waits."""
        if not self.enabled or digest is None:
            return
        if self._writes is None:
            self._writes = queue.Queue(maxsize=4096)
            self._writer = threading.Thread(target=self._write_queued, name="tlcli-feature-cache", daemon=True)
            self._writer.start()
        self._writes.put((digest, np.array(row, dtype=np.float32)))

    def flush(self) -> None:
        """Wait until every queued row is on disk; raise the first error a write met."""
        if self._writes is not None:
            self._writes.put(None)
            self._writer.join()
            self._writes = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _sweep(self, folder: Path) -> None:
        """Once per folder and process, before writing into it: remove the temporaries of writers that
        were killed (``.<row>.npy.tmp-<pid>`` whose process is gone)."""
        swept = self.__dict__.setdefault("_swept", set())
        if folder in swept:
            return
        swept.add(folder)
        for leftover in folder.glob(".*.npy.tmp-*"):
            if not _alive(leftover.name.rsplit("-", 1)[-1]):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _write_queued(self) -> None:
        while (item := self._writes.get()) is not None:
            if self._error is not None:
                continue  # drain: the error is raised by flush
            digest, row = item
            try:
                self._sweep(self._path(digest).parent)
                buffer = io.BytesIO()
                np.save(buffer, row, allow_pickle=False)
                atomic_write_bytes(self._path(digest), buffer.getvalue())
            except Exception as error:  # kept for flush; the thread must live on, or put() would block
                self._error = error


def _alive(pid_text: str) -> bool:
    """Whether the process of that pid (a temporary file's suffix) still runs; unknown counts as alive."""
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OverflowError, OSError):
        return True
    return True


def image_features(clip, paths: list[Path], bad: BadFiles, *, batch_size: int | None = None,
                   workers: int | None = None, use_cache: bool = True, on_progress=None,
                   quiet: bool = False) -> Features:
    """Features of every readable path, from the cache where possible; bad files go to ``bad``."""
    import time

    started = time.time()
    stats: dict = {}
    kept: list[int] = []
    chunks: list[np.ndarray] = []
    for indices, rows in stream_image_features(clip, paths, bad, batch_size=batch_size, workers=workers,
                                               use_cache=use_cache, on_progress=on_progress, stats=stats,
                                               quiet=quiet):
        kept.extend(indices)
        chunks.append(rows)
    array = np.concatenate(chunks).astype(np.float32, copy=False) if kept \
        else np.zeros((0, clip.embed_dim), dtype=np.float32)
    return Features(array, kept, stats["cached"], stats["computed"], time.time() - started)


def stream_image_features(clip, paths: list[Path], bad: BadFiles, *, batch_size: int | None = None,
                          workers: int | None = None, use_cache: bool = True, on_progress=None,
                          stats: dict | None = None, quiet: bool = False):
    """Yield ``(indices, rows (k, D) float32)`` in input order, as soon as every earlier path is done:
    cached rows at once, computed ones batch by batch (so `tlcli zeroshot --json | head` prints while
    the model works). Bad files go to ``bad`` and are skipped. ``stats`` gets ``cached``/``computed``.

    Decoding runs on threads, a batch ahead of the model: the model works on one batch while the next
    is decoded. Progress of the computed part goes to stderr (a bar on a terminal, plain lines otherwise)
    unless ``quiet``; damaged cache entries are reported once and computed again.
    """
    stats = {} if stats is None else stats
    cache = FeatureCache(clip, enabled=use_cache)
    if batch_size is None:  # on an H100, ViT-B-32: 600 images/s at 32, 902 at 256 (decoding-bound either way)
        batch_size = 32 if clip.device_name == "cpu" else 256
    workers = default_workers() if workers is None else workers
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        digests = list(pool.map(content_digest, paths)) if use_cache else [None] * len(paths)
    rows: dict[int, np.ndarray] = {}
    for i, digest in enumerate(digests):
        hit = cache.get(digest)
        if hit is not None:
            rows[i] = hit
    stats["cached"], stats["computed"], stats["damaged"] = len(rows), 0, cache.damaged
    if cache.damaged:
        warn(f"feature cache: {cache.damaged} damaged entr{'y' if cache.damaged == 1 else 'ies'} (torn, wrong "
             f"shape or not finite) under {cache.root}; computing {'it' if cache.damaged == 1 else 'them'} again")
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
    transform, collate, to_model = _pipeline(clip) if missing else (None, None, None)
    progress = ItemProgress("image features", len(missing), quiet)
    try:
        progress.__enter__()
        for batch_indices, batch, bad_items in _batches([paths[i] for i in missing], transform, collate,
                                                        batch_size, workers):
            for item in bad_items:
                bad.add(item[1])
                failed.add(missing[item[0]])
            if batch is not None:
                out = clip.encode_images(to_model(batch)).numpy()
                for j, local in enumerate(batch_indices):
                    index = missing[local]
                    rows[index] = out[j]
                    if np.isfinite(out[j]).all():  # never store what a later read would refuse
                        cache.put(digests[index], out[j])
                stats["computed"] += len(batch_indices)
            progress.update(stats["computed"] + len(failed))
            if on_progress is not None:
                on_progress(stats["cached"] + stats["computed"] + len(failed), len(paths))
            chunk = ready()
            if chunk is not None:
                yield chunk
    except BaseException:  # an error, Ctrl-C, or the consumer stopped early: keep what was computed
        progress.__exit__(None, None, None)
        with contextlib.suppress(Exception):
            cache.flush()
        raise
    progress.__exit__(None, None, None)
    cache.flush()


def _pipeline(clip):
    """``(transform, collate, to_model)``: per image on the decode threads, per batch on the producer
    thread, per batch before the model. (Imports torch and open_clip: only called with work to do.)"""
    split = clip.split_preprocess  # PIL steps per image, tensor steps once per batch
    if split is None:
        import torch

        return clip.preprocess, torch.stack, lambda batch: batch
    if clip.device.type == "cpu":
        return split.per_image, split.batch, lambda batch: batch
    return split.per_image, split.stack, lambda pixels: split.normalise(pixels, clip.device)  # on the GPU


def _batches(paths: list[Path], transform, collate, batch_size: int, workers: int):
    """Yield ``(indices, collate(transformed images) or None, [(index, BadImage)])``, decoded by a producer
    thread so the model never waits for a whole batch to be decoded after the previous one."""
    if not paths:
        return
    out: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

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


