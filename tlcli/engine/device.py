"""Device and precision choice: GPU when present, CPU otherwise; bf16 where the hardware has it."""

from __future__ import annotations

import contextlib

import torch

from tlcli.errors import UsageError
from tlcli.hardware import cpu_has_bf16  # noqa: F401  (re-exported: callers import it from here)

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return _cuda_for_this_process()
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: Apple MPS is not available here; use --device auto or cpu")
    if name == "cuda":
        return _cuda_for_this_process()
    return torch.device(name)


def _cuda_for_this_process() -> torch.device:
    """This process's GPU: under torchrun, the one numbered LOCAL_RANK (one process per GPU)."""
    rank, count = _local_rank(), torch.cuda.device_count()
    if rank >= count:
        raise UsageError(f"torchrun started local process {rank} but only {count} CUDA GPU(s) are visible: "
                         f"use --nproc-per-node {count} (one process per GPU), or --device cpu")
    return torch.device("cuda", rank)


def _local_rank() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise UsageError("--precision fp16 needs a GPU; on the CPU use bf16 or fp32")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_bf16():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
