"""Images per second of a model on this machine: the reason to distil."""

from __future__ import annotations

import time

import torch


@torch.inference_mode()
def images_per_second(forward, batch: torch.Tensor, repeats: int = 3, min_seconds: float = 0.25) -> float:
    """Best of ``repeats`` timings of ``forward(batch)`` (after one warm-up call), each repeated until it
    took at least ``min_seconds``. Inputs are already preprocessed: this measures the model, not decoding."""
    forward(batch)
    best = 0.0
    for _ in range(repeats):
        _sync(batch)
        started, images = time.perf_counter(), 0
        while True:
            forward(batch)
            images += batch.shape[0]
            _sync(batch)
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                break
        best = max(best, images / elapsed)
    return best


def _sync(batch: torch.Tensor) -> None:
    if batch.device.type == "cuda":
        torch.cuda.synchronize(batch.device)
