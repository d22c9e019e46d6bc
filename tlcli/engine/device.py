"""The engine's view of placement: torch devices and autocast from the one resolver, ``tlcli.device``."""

from __future__ import annotations

import contextlib

import torch

from tlcli import device as placement
from tlcli.hardware import cpu_has_bf16  # noqa: F401  (re-exported: callers import it from here)

DEVICES = placement.DEVICES
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    return torch.device(placement.resolve_device(name))


def resolve_precision(name: str, device: torch.device, workload: str = "train") -> str:
    """``--precision`` for ``workload`` on ``device`` (see tlcli.device.POLICY)."""
    if name == "int8":
        raise placement.UsageError("--precision int8: only for encoding texts; use auto, bf16 or fp32")
    return placement.resolve(workload, str(device), name).precision


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
