"""Embedding a big corpus on several processes: ``torchrun --nproc-per-node N -m tlcli rag index ...``.

Rank 0 does everything an index build does (walk, hash, chunk, write the index). Only the embedding is
shared: for every batch rank 0 sends the texts to all ranks, each rank embeds every N-th text (on its own
GPU when there are GPUs), and rank 0 gathers the rows back in order. The index is the same as a single
process would write; only the batch each text is padded in differs.

Messages are JSON (no pickle) sent as a byte tensor over a gloo group, so the texts travel the same way
whether the model runs on CPUs or GPUs.
"""

from __future__ import annotations

import json
import os

import numpy as np


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_device(device: str) -> str:
    """Each process on its own GPU: ``auto``/``cuda`` become ``cuda:LOCAL_RANK`` when GPUs exist."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        return f"cuda:{index}"
    return "cpu" if device == "auto" else device


def _group() -> None:
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")


def _broadcast(message: dict | None) -> dict:
    """Rank 0 sends ``message``; every rank returns it."""
    import torch
    import torch.distributed as dist

    if rank() == 0:
        data = np.frombuffer(json.dumps(message).encode("utf-8"), dtype=np.uint8)
        size = torch.tensor([len(data)], dtype=torch.int64)
    else:
        size = torch.zeros(1, dtype=torch.int64)
    dist.broadcast(size, src=0)
    buffer = torch.from_numpy(data.copy()) if rank() == 0 else torch.empty(int(size), dtype=torch.uint8)
    dist.broadcast(buffer, src=0)
    return json.loads(buffer.numpy().tobytes().decode("utf-8"))


def _gather_rows(mine: np.ndarray, total: int, dimension: int) -> np.ndarray | None:
    """Every rank's rows (rank r holds texts r, r+N, ...) back in input order on rank 0."""
    import torch
    import torch.distributed as dist

    size = world_size()
    longest = -(-total // size)
    padded = np.zeros((longest, dimension), dtype=np.float32)
    padded[: len(mine)] = mine
    parts = [torch.zeros((longest, dimension), dtype=torch.float32) for _ in range(size)]
    dist.all_gather(parts, torch.from_numpy(padded))
    if rank() != 0:
        return None
    out = np.empty((total, dimension), dtype=np.float32)
    for r, part in enumerate(parts):
        count = len(range(r, total, size))
        out[r::size] = part.numpy()[:count]
    return out


class ShardedEmbedder:
    """Rank 0's embedder: the TextEmbedder interface, with ``encode`` spread over every rank."""

    def __init__(self, inner, settings: dict):
        self.inner = inner
        _broadcast({"op": "start", **settings})

    def __getattr__(self, name):  # tokenizer, dimension, max_seq_length, key: rank 0's own
        return getattr(self.inner, name)

    def encode(self, texts) -> np.ndarray:
        texts = list(texts)
        _broadcast({"op": "encode", "texts": texts})
        mine = self.inner.encode(texts[0 :: world_size()])
        return _gather_rows(mine, len(texts), self.inner.dimension)


def make_sharded_embedder(model: str, device: str, precision: str, batch_size: int | None) -> ShardedEmbedder:
    from tlcli.models.embedder import TextEmbedder

    _group()
    inner = TextEmbedder(model, device=local_device(device), precision=precision, batch_size=batch_size)
    return ShardedEmbedder(inner, {"model": model, "device": device, "precision": precision,
                                   "batch_size": batch_size})


def finish() -> None:
    """Rank 0, however the build ended: tell the other ranks to stop waiting."""
    import torch.distributed as dist

    _group()
    _broadcast({"op": "done"})
    dist.destroy_process_group()


def serve() -> None:
    """Ranks other than 0: embed each batch's share until rank 0 says it is done."""
    import torch.distributed as dist

    from tlcli.models.embedder import TextEmbedder

    _group()
    embedder = None
    while True:
        message = _broadcast(None)
        if message["op"] == "done":
            break
        if message["op"] == "start":
            embedder = TextEmbedder(message["model"], device=local_device(message["device"]),
                                    precision=message["precision"], batch_size=message["batch_size"])
            continue
        texts = message["texts"]
        mine = embedder.encode(texts[rank() :: world_size()])
        _gather_rows(mine, len(texts), embedder.dimension)
    dist.destroy_process_group()
