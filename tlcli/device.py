"""Placement: the device and precision a workload runs in, decided here and nowhere else.

``resolve(workload, device="auto", precision="auto")`` -> :class:`Placement` for the four workloads
``train``, ``encode_images``, ``encode_texts`` and ``generate``, from one policy table (``POLICY``):

- CUDA: bf16 where the GPU supports it, else fp16. Apple MPS: fp32, except generation (fp16).
- CPU: fp32, or bf16 where *this* CPU was measured to run it faster. The measurement
  (:func:`measure_cpu`: a MiniLM-sized stack of linear layers in fp32 and bf16, well under 2 s) runs the
  first time a CPU model is seen and is cached as JSON in ``TLCLI_HOME/device/``, keyed by the CPU's model,
  its bf16-related flags and the torch version. bf16 is chosen for a workload only where it measured at
  least ``MIN_SPEEDUP`` x faster, and for ``encode_texts`` only where its output's cosine to fp32 was at
  least ``MIN_COSINE``. Generation on a CPU stays fp32: decoding is bound by memory, not by matmuls.
- An explicit ``--precision`` wins (fp16 needs a GPU; int8 is for encoding texts on a CPU).

Nothing here imports torch until a GPU may exist or a measurement has to run, so a fully cached CPU run
decides its placement (and its cache keys) without paying for torch. ``tlcli doctor`` prints it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass
from typing import Callable

from tlcli.console.errors import UsageError

WORKLOADS = ("train", "encode_images", "encode_texts", "generate")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
MIN_SPEEDUP = 1.15  # bf16 must beat fp32 by this much on a CPU (noise on a shared machine is ~5%)
MIN_COSINE = 0.999  # bf16 text embeddings must stay this close to fp32's
CALIBRATION_VERSION = 2

# workload -> (CUDA rule, MPS precision, CPU rule). Rules: "bf16|fp16" = bf16 where supported else fp16;
# "measured" = bf16 where it measured faster; "measured+cosine" = and where its results agree with fp32.
POLICY: dict[str, tuple[str, str, str]] = {
    "train": ("bf16|fp16", "fp32", "measured"),
    "encode_images": ("bf16|fp16", "fp32", "measured"),
    "encode_texts": ("bf16|fp16", "fp32", "measured+cosine"),
    "generate": ("bf16|fp16", "fp16", "fp32"),
}
# Text encoding batches: (texts a batch, padded tokens a batch), measured with benchmarks/rag.py.
TEXT_BATCHES = {("cpu", "fp32"): (16, 2048), ("cpu", "bf16"): (32, 4096), ("cpu", "int8"): (16, 2048)}
GPU_TEXT_BATCH = (64, 8192)


@dataclass(frozen=True)
class Placement:
    """Where and how a workload runs. ``dtype``/``autocast_dtype`` are torch dtypes (importing torch)."""

    workload: str
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    precision: str  # "fp32" | "bf16" | "fp16" | "int8"
    reason: str  # why this precision, for people (`tlcli doctor`)
    batch_size: int | None = None  # a hint: texts per batch (encode_texts)
    token_budget: int | None = None  # a hint: padded tokens per batch (encode_texts)

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @property
    def dtype(self):
        """The dtype weights are held in (int8 models keep fp32 outside their quantised linears)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)

    @property
    def autocast_dtype(self):
        """The dtype of mixed-precision autocast, or None (fp32, int8)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device_type, dtype=dtype)

    def record(self) -> dict:
        return asdict(self)


def resolve(workload: str, device: str = "auto", precision: str = "auto", *,
            calibration: dict | None = None) -> Placement:
    """The placement of ``workload``; ``calibration`` (what :func:`measure_cpu` returns) replaces this CPU's
    cached measurement (tests inject it)."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}: expected one of {', '.join(WORKLOADS)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: expected {', '.join(PRECISIONS)}")
    device = resolve_device(device)
    kind = device.split(":")[0]
    if precision != "auto":
        _check_asked(workload, kind, precision)
        chosen, reason = precision, "asked for"
    elif kind == "cuda":
        chosen, reason = _cuda_rule(POLICY[workload][0])
    elif kind == "mps":
        chosen, reason = POLICY[workload][1], "policy for Apple MPS"
    else:
        chosen, reason = _cpu_rule(POLICY[workload][2], calibration)
    batch = (None, None)
    if workload == "encode_texts":
        batch = TEXT_BATCHES.get((kind, chosen), (16, 2048)) if kind == "cpu" else GPU_TEXT_BATCH
    return Placement(workload, device, chosen, reason, *batch)


def _check_asked(workload: str, kind: str, precision: str) -> None:
    if precision == "fp16" and kind == "cpu":
        raise UsageError("--precision fp16 needs a GPU; on the CPU use bf16 or fp32")
    if precision == "int8" and (workload != "encode_texts" or kind != "cpu"):
        raise UsageError(f"--precision int8: only for encoding texts on a CPU (here: {workload.replace('_', ' ')} "
                         f"on {kind}); use auto, bf16 or fp32")


def _cuda_rule(rule: str) -> tuple[str, str]:
    import torch

    if torch.cuda.is_bf16_supported():
        return "bf16", "CUDA GPU with bf16"
    return "fp16", "CUDA GPU without bf16"


def _cpu_rule(rule: str, calibration: dict | None) -> tuple[str, str]:
    if rule == "fp32":
        return "fp32", "policy: fp32 on a CPU for this workload"
    measured = calibration if calibration is not None else cpu_calibration()
    speedup = float(measured.get("bf16_speedup", 0.0))
    cosine = float(measured.get("bf16_cosine", 0.0))
    if speedup < MIN_SPEEDUP:
        return "fp32", f"measured: bf16 {speedup:.2f}x fp32 on this CPU (needs {MIN_SPEEDUP}x)"
    if rule == "measured+cosine" and cosine < MIN_COSINE:
        return "fp32", f"measured: bf16 cosine to fp32 {cosine:.4f} (needs {MIN_COSINE})"
    return "bf16", f"measured: bf16 {speedup:.2f}x fp32 on this CPU"


# --- devices -------------------------------------------------------------------------------------

def resolve_device(name: str = "auto") -> str:
    """``--device`` as a torch device string: "auto" is this process's CUDA GPU, else MPS, else the CPU --
    decided without importing torch where no GPU can exist. Under torchrun each process takes the GPU
    numbered LOCAL_RANK."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise UsageError(f"--device {name}: expected {', '.join(DEVICES)} (or cuda:N)")
    if name == "cpu":
        return "cpu"
    import sys

    from tlcli.hardware import no_gpu_possible

    if name == "auto" and "torch" not in sys.modules and no_gpu_possible():
        return "cpu"  # without importing torch (about 2 s) where no GPU device node exists
    import torch

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return _cuda_for_this_process()
        return "mps" if mps else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible; use --device auto or cpu")
    if name == "mps" and not mps:
        raise UsageError("--device mps: Apple MPS is not available here; use --device auto or cpu")
    return _cuda_for_this_process() if name == "cuda" else name


def _cuda_for_this_process() -> str:
    import torch

    rank, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if rank >= count:
        raise UsageError(f"torchrun started local process {rank} but only {count} CUDA GPU(s) are visible: "
                         f"use --nproc-per-node {count} (one process per GPU), or --device cpu")
    return f"cuda:{rank}"


# --- the CPU measurement -------------------------------------------------------------------------

def cpu_identity() -> dict:
    """What the measurement depends on: the CPU model, its vector/bf16 flags, the torch version."""
    from importlib.metadata import PackageNotFoundError, version

    from tlcli.hardware import cpu_flags, cpu_model

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "none"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")
    flags = sorted(flag for flag in cpu_flags() if flag in wanted)
    return {"cpu": cpu_model() or platform.processor() or platform.machine(), "flags": flags,
            "torch": torch_version, "version": CALIBRATION_VERSION}


def calibration_path():
    from tlcli.runs.paths import tlcli_home

    ident = json.dumps(cpu_identity(), sort_keys=True)
    return tlcli_home() / "device" / f"cpu-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json"


_measured_here: dict[str, dict] = {}  # identity -> measurement, so one process measures at most once


def cpu_calibration(measure: Callable[[], dict] | None = None) -> dict:
    """This CPU's measurement: from the cache, else measured now (``measure``, default
    :func:`measure_cpu`) and cached."""
    from tlcli.runs.paths import atomic_write_text

    path = calibration_path()
    identity = cpu_identity()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("identity") == identity and isinstance(data.get("bf16_speedup"), (int, float)):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    key = json.dumps(identity, sort_keys=True)
    if measure is None and key in _measured_here:
        data = _measured_here[key]
    else:
        data = {**(measure or measure_cpu)(), "identity": identity}
        _measured_here[key] = data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1))
    except OSError:
        pass  # an unwritable home: measured again next time, never an error
    return data


def measure_cpu(rows: int = 512, layers: int = 2, rounds: int = 7) -> dict:
    """A MiniLM-sized encoder's feed-forward matmuls (384 -> 1536 -> 384, ``layers`` times) over ``rows``
    tokens in fp32 and in bf16 on one thread, alternating so that both meet the same load: the best of
    ``rounds`` timings of each, and the cosine of the outputs (under a second). One thread, because on a
    shared machine multi-threaded timings swing 2x from run to run while the per-core ratio holds steady
    (2.2-2.5x on a loaded 2-core EPYC). Where bf16 is emulated (many times slower) it stops early."""
    import time

    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    weights = [(torch.randn(1536, 384, generator=generator) * 384 ** -0.5, torch.randn(1536, generator=generator) * 0.02,
                torch.randn(384, 1536, generator=generator) * 1536 ** -0.5, torch.randn(384, generator=generator) * 0.02)
               for _ in range(layers)]
    x = torch.randn(rows, 384, generator=generator)
    cast = {dtype: ([tuple(t.to(dtype) for t in layer) for layer in weights], x.to(dtype))
            for dtype in (torch.float32, torch.bfloat16)}

    def run(dtype) -> tuple[float, torch.Tensor]:
        params, h = cast[dtype]
        start = time.perf_counter()
        for w1, b1, w2, b2 in params:
            h = h + F.linear(F.relu(F.linear(h, w1, b1)), w2, b2)
        return time.perf_counter() - start, h.float()

    best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
    outputs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _timed_rounds(run, best, outputs, rounds)
    finally:
        torch.set_num_threads(threads)
    cosine = float(F.cosine_similarity(outputs[torch.float32], outputs[torch.bfloat16], dim=1).min())
    fp32_s, bf16_s = best[torch.float32], best[torch.bfloat16]
    return {"fp32_s": round(fp32_s, 6), "bf16_s": round(bf16_s, 6),
            "bf16_speedup": round(fp32_s / max(bf16_s, 1e-9), 3), "bf16_cosine": round(cosine, 6)}


def _timed_rounds(run, best: dict, outputs: dict, rounds: int) -> None:
    import torch

    with torch.inference_mode():
        run(torch.float32), run(torch.bfloat16)  # warm-up: thread pool, allocator, kernels
        for _ in range(rounds):
            for dtype in best:
                seconds, outputs[dtype] = run(dtype)
                best[dtype] = min(best[dtype], seconds)
            if best[torch.bfloat16] > 4 * best[torch.float32]:
                break  # emulated: no need to learn precisely how slow


def describe(calibration: dict | None = None) -> list[dict]:
    """One row per workload: its placement with ``auto`` (for `tlcli doctor`)."""
    return [resolve(workload, calibration=calibration).record() for workload in WORKLOADS]
