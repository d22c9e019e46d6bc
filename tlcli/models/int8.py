"""int8 linear layers for a frozen text encoder on a CPU: ``quantize_linears(encoder, calibrate)``.

Each ``nn.Linear`` becomes an :class:`Int8Linear`: weights quantised once (symmetric, per output channel, or
per group of input features), activations quantised per token at run time (asymmetric: each token's own
minimum and maximum), multiplied as int8 with ``torch._int_mm`` (oneDNN's VNNI or AVX2 int8 kernels) into
int32 and scaled back to float32. Two measured choices keep the results near fp32 (MiniLM, pydoc chunks;
benchmarks/rag.py and docs/rag-benchmarks.md):

- per-token activations, asymmetric: torch's ``quantize_dynamic`` uses one scale per activation tensor, and
  a few outlier tokens then leave the rest with a handful of levels (cosine to fp32 0.80 unsmoothed);
  per-token scales give 0.9985, asymmetric ones 0.9991 (LayerNorm outputs are not centred on zero);
- SmoothQuant (alpha 0.5) for the layers fed by a LayerNorm (``qkv``, ``up``): their input feature j is divided
  by s_j = a_j^alpha / w_j^(1-alpha) and the weight column multiplied by it, so a few outlier features no
  longer spend each token's range; and the feed-forward's second linear (``down``, 1536 inputs) gets one
  weight scale per 256 inputs instead of one per row. Together: mean cosine 0.9995.

On a CPU without VNNI the activations get 7 bits instead of 8 (:func:`activation_steps`). Each linear's
zero-point share (the token's offset times the quantised weight row's sum) is added in float32.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

SMOOTHED = ("qkv", "up")  # layers whose input is a LayerNorm's output
GROUPS = {"down": 256}  # layer name -> input features per weight scale
ALPHA = 0.5


class Int8Linear(nn.Module):
    """``F.linear(x, weight, bias)`` (then GELU when ``gelu``) with int8 weights and per-token int8 inputs."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, smooth: torch.Tensor | None = None,
                 group: int | None = None, gelu: bool = False):
        super().__init__()
        weight = weight.detach().float()
        out_features, in_features = weight.shape
        if smooth is not None:
            weight = weight * smooth[None, :]
        group = group if group and in_features % group == 0 else in_features
        blocks = weight.reshape(out_features, in_features // group, group)
        scales = blocks.abs().amax(-1).clamp(min=1e-8) / 127  # (out, groups)
        quantised = (blocks / scales[..., None]).round().clamp(-127, 127).to(torch.int8)
        self.register_buffer("inverse_smooth", None if smooth is None else (1.0 / smooth).contiguous())
        # (groups, out, group): one contiguous int8 block per group, which _int_mm takes transposed
        self.register_buffer("codes", quantised.transpose(0, 1).contiguous())
        self.register_buffer("scales", scales.t().contiguous())  # (groups, out)
        # rows: the quantised weight rows' sums (times each token's offset) and the bias, added by one rank-2
        # product. The quantised rows, not the exact ones: then the weights' rounding error multiplies x
        # itself (mostly near zero after a GELU) rather than x minus its offset (measured: cosine 0.99 vs 0.999).
        bias = torch.zeros(out_features) if bias is None else bias.detach().float()
        row_sums = (quantised.float() * scales[..., None]).sum((1, 2))
        self.register_buffer("offsets", torch.stack([row_sums, bias]))
        self.group, self.in_features, self.out_features = group, in_features, out_features
        self.steps = activation_steps()
        self.gelu = gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features)
        if self.inverse_smooth is not None:
            rows = rows * self.inverse_smooth
        # amin and amax, not aminmax(dim=...): about 20x faster on a CPU
        low, high = rows.amin(1, keepdim=True), rows.amax(1, keepdim=True)
        # 254.9 steps, not 255, so that float rounding never reaches 128 (126.9: never reaches 0)
        scale = (high - low).clamp_(min=1e-8).div_(self.steps)
        offset = low + 128 * scale  # x = scale * q + offset, q in [-128, 127] (or [-128, -1])
        codes = (rows - offset).div_(scale).round_().to(torch.int8)
        groups = self.codes.shape[0]
        out = None
        for g in range(groups):
            part = codes if groups == 1 else codes[:, g * self.group:(g + 1) * self.group]
            product = torch._int_mm(part, self.codes[g].t()) * self.scales[g]
            out = product if out is None else out.add_(product)
        out.mul_(scale)
        out.addmm_(torch.cat([offset, torch.ones_like(offset)], dim=1), self.offsets)
        if self.gelu:
            out = F.gelu(out)
        return out.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, int8, "
                f"weight scales per {self.group} inputs{', smoothed' if self.inverse_smooth is not None else ''}"
                f"{', gelu' if self.gelu else ''}")


@functools.cache
def activation_steps() -> float:
    """The steps each token's range is cut into: 254.9 (codes -128..127) where this CPU's int8 product is
    exact over the whole int8 range, 126.9 (codes -128..-1) where it is not. Without VNNI (AVX2, AVX-512
    without VNNI) oneDNN shifts the activations to unsigned (code + 128) and multiplies pairs into 16 bits,
    which saturate: 64 x 127 x 127 came back as 8,160. Unsigned codes up to 127 keep every pair in range
    with 8-bit weights (fbgemm's ``reduce_range`` does the same); measured, 7-bit activations lose less
    than 7-bit weights would (mean cosine 0.9990 against 0.9986)."""
    a = torch.full((4, 64), 127, dtype=torch.int8)
    return 254.9 if int(torch._int_mm(a, a.t().contiguous())[0, 0]) == 64 * 127 * 127 else 126.9


def int8_available() -> bool:
    """Whether this torch multiplies int8 matrices on the CPU (``torch._int_mm``)."""
    try:
        a = torch.ones(4, 8, dtype=torch.int8)
        return bool(torch._int_mm(a, a.t().contiguous()).eq(8).all())
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


def quantize_linears(encoder: nn.Module, calibrate: Callable[[], None], alpha: float = ALPHA) -> nn.Module:
    """Replace, in place, ``encoder``'s ``nn.Linear`` layers by :class:`Int8Linear`; ``calibrate()`` runs a
    forward pass whose inputs set the smoothing. A linear named ``up`` followed by an ``act`` GELU (tlcli's
    BertLayer) takes the GELU into its forward."""
    targets = {name: module for name, module in encoder.named_modules() if type(module) is nn.Linear}
    peaks: dict[str, torch.Tensor] = {}

    def record(name):
        def hook(module, args):
            x = args[0].detach().abs().reshape(-1, module.in_features).amax(0)
            peaks[name] = torch.maximum(peaks[name], x) if name in peaks else x
        return hook

    hooks = [module.register_forward_pre_hook(record(name)) for name, module in targets.items()
             if name.rpartition(".")[2] in SMOOTHED]
    try:
        calibrate()
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for name, linear in targets.items():
            parent_name, _, child = name.rpartition(".")
            parent = encoder.get_submodule(parent_name) if parent_name else encoder
            smooth = None
            if name in peaks:
                weight_peak = linear.weight.abs().amax(0).clamp(min=1e-5)
                smooth = (peaks[name].clamp(min=1e-5) ** alpha / weight_peak ** (1 - alpha)).clamp(min=1e-5)
            act = getattr(parent, "act", None)
            gelu = child == "up" and type(act) is nn.GELU and act.approximate == "none"
            setattr(parent, child, Int8Linear(linear.weight, linear.bias, smooth, GROUPS.get(child), gelu))
            if gelu:
                parent.act = nn.Identity()
    return encoder


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse instead of handing them back to the system: the
    int8 forward makes many short-lived activation-sized tensors, and with glibc's defaults each new one
    costs page faults: MiniLM int8 encoding ran at 1.2x fp32's speed with the defaults, 1.6x with this
    (2-core AMD EPYC). Blocks up to 32 MB (glibc's largest dynamic threshold) then come from the heap.
    Process-wide, and only where glibc is the allocator; False elsewhere."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False
