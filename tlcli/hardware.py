"""What the machine has, answered without importing torch (which costs ~2 s): commands whose inputs are
all cached decide their cache keys from this and never load torch."""

from __future__ import annotations

import os
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once ("" where there is none: macOS, Windows, a sandbox)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    """The CPU's feature flags (the first processor's), empty where /proc/cpuinfo is missing."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    """The CPU's model name ("" where unknown)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run natively rather than emulated. Whether they are *faster* than
    fp32 is measured per CPU by tlcli.device, not assumed from this."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def no_gpu_possible() -> bool:
    """True only when torch certainly sees no GPU: Linux without NVIDIA, AMD (ROCm) or WSL GPU device
    nodes (a GPU in a container is visible as these too). Anywhere else (macOS has MPS) ask torch."""
    if not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(node) for node in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"))
