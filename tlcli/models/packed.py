"""Faster CPU inference: linear layers with their weights pre-packed for oneDNN.

A plain ``F.linear`` re-lays-out its weight for oneDNN's kernels on every call (bf16), or goes to a GEMM
library that does the same (fp32); packing it once (what torch.compile's freezing pass does, here without
the compile time) makes the matrix multiplications of CLIP's image tower 10-15% faster in bf16 with
bit-identical outputs (tests/core/test_packed.py), and MiniLM's about 10% faster in fp32 with outputs equal to
~1e-7 in cosine (benchmarks/rag.py). Used for frozen, inference-only towers: packed weights are not trainable.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def packing_available(device: torch.device, dtype: torch.dtype) -> bool:
    """bf16 or fp32 on a CPU whose torch has oneDNN's packed linear, and where it gives F.linear's result:
    bit-identical in bf16; in fp32 equal to rounding (the two libraries sum in different orders)."""
    if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float32) or not torch.backends.mkldnn.is_available():
        return False
    try:
        weight = torch.randn(24, 16, dtype=dtype)
        bias = torch.randn(24, dtype=dtype)
        x = torch.randn(5, 16, dtype=dtype)
        packed = PackedLinear.from_weights(weight, bias, rows=5)
        if dtype == torch.float32:
            return torch.allclose(packed(x), F.linear(x, weight, bias), rtol=1e-5, atol=1e-5)
        return torch.equal(packed(x), F.linear(x, weight, bias))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


class PackedLinear(nn.Module):
    """``F.linear(x, weight, bias)`` with the weight packed for oneDNN (inference only)."""

    def __init__(self, packed: torch.Tensor, bias: torch.Tensor | None, in_features: int, out_features: int,
                 activation: str = "none"):
        super().__init__()
        self.packed, self.bias = packed, bias
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation  # "gelu": GELU applied inside the kernel, on the float32 accumulator

    @property
    def weight(self) -> torch.Tensor:
        """The packed (opaque oneDNN) weight: enough for code that asks a layer for its dtype or shape."""
        return self.packed

    @classmethod
    def from_weights(cls, weight: torch.Tensor, bias: torch.Tensor | None, rows: int) -> "PackedLinear":
        """``rows``: the typical number of input rows (batch x tokens), a hint for the packed layout."""
        weight = weight.detach().contiguous()
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
        return cls(packed, None if bias is None else bias.detach().contiguous(), weight.shape[1], weight.shape[0])

    @classmethod
    def from_linear(cls, linear: nn.Linear, rows: int) -> "PackedLinear":
        return cls.from_weights(linear.weight, linear.bias, rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, shape[-1]), self.packed, self.bias,
                                                 self.activation, [], "none" if self.activation == "gelu" else "")
        return out.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed=oneDNN"


class PackedSelfAttention(nn.Module):
    """Drop-in for an ``nn.MultiheadAttention`` used as unmasked self-attention (a ViT's blocks): packed
    input and output projections around ``F.scaled_dot_product_attention``. Any other use (a mask,
    cross-attention, attention weights) goes to the original module."""

    def __init__(self, attention: nn.MultiheadAttention, rows: int):
        super().__init__()
        self.original = attention
        self.num_heads, self.batch_first = attention.num_heads, attention.batch_first
        self.in_proj = PackedLinear.from_weights(attention.in_proj_weight, attention.in_proj_bias, rows)
        self.out_proj = PackedLinear.from_linear(attention.out_proj, rows)

    def forward(self, query, key, value, need_weights: bool = True, attn_mask=None, **kwargs):
        if key is not query or value is not query or attn_mask is not None or need_weights or kwargs:
            return self.original(query, key, value, need_weights=need_weights, attn_mask=attn_mask, **kwargs)
        x = query if self.batch_first else query.transpose(0, 1)
        out = self.attend(x)
        return (out if self.batch_first else out.transpose(0, 1)), None

    def attend(self, x: torch.Tensor, query_tokens: int | None = None) -> torch.Tensor:
        """Self-attention of ``x`` (batch, tokens, width); with ``query_tokens`` only the outputs of the
        first that many tokens (keys and values still come from all of them)."""
        batch, tokens, width = x.shape
        head_dim = width // self.num_heads
        qkv = self.in_proj(x).view(batch, tokens, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        queries = qkv[0] if query_tokens is None else qkv[0][:, :, :query_tokens]
        # Explicit softmax(q k^T / sqrt(d)) v: for ViT's short sequences (50 tokens) two batched matmuls
        # beat the CPU flash-attention kernel.
        scores = torch.matmul(queries * head_dim ** -0.5, qkv[1].transpose(-2, -1))
        out = torch.matmul(scores.softmax(dim=-1), qkv[2])
        return self.out_proj(out.transpose(1, 2).reshape(batch, queries.shape[2], width))


class ClassTokenOnlyBlock(nn.Module):
    """The last block of a ViT whose output is its class token (open_clip ``pool_type='tok'``): only that
    token's output is needed, so attention output, MLP and residuals run for one token instead of all
    (keys and values still see every token). Same result; about 6% fewer FLOPs for a 12-block ViT."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, attn_mask=None) -> torch.Tensor:
        block = self.block
        if attn_mask is not None:
            return block(x, attn_mask=attn_mask)
        x = x[:, :1] + block.ls_1(block.attn.attend(block.ln_1(x), query_tokens=1))
        return x + block.ls_2(block.mlp(block.ln_2(x)))


def pack_for_inference(module: nn.Module, rows: int) -> int:
    """Replace, in place, every ``nn.Linear`` and packable ``nn.MultiheadAttention`` under ``module`` by its
    packed form; returns how many were replaced. ``module`` must be frozen and stay in eval mode."""
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.MultiheadAttention) and child._qkv_same_embed_dim and child.in_proj_bias is not None \
                and child.bias_k is None and not child.add_zero_attn:
            setattr(module, name, PackedSelfAttention(child, rows))
            replaced += 1
        elif isinstance(child, nn.Sequential):
            replaced += _pack_sequential(child, rows)
        elif type(child) is nn.Linear:
            setattr(module, name, PackedLinear.from_linear(child, rows))
            replaced += 1
        else:
            replaced += pack_for_inference(child, rows)
    return replaced


def _pack_sequential(sequence: nn.Sequential, rows: int) -> int:
    """Pack a Sequential's linear layers; a Linear followed by an exact nn.GELU becomes one fused kernel."""
    replaced = 0
    children = list(sequence.named_children())
    for i, (name, child) in enumerate(children):
        if type(child) is not nn.Linear:
            replaced += pack_for_inference(child, rows) if not isinstance(child, nn.GELU) else 0
            continue
        packed = PackedLinear.from_linear(child, rows)
        following = children[i + 1][1] if i + 1 < len(children) else None
        if type(following) is nn.GELU and following.approximate == "none":
            packed.activation = "gelu"
            setattr(sequence, children[i + 1][0], nn.Identity())
        setattr(sequence, name, packed)
        replaced += 1
    return replaced


def fuse_intermediate_gelu(module: nn.Module) -> int:
    """In Hugging Face BERT-family encoders (``*Intermediate``: ``dense`` then ``intermediate_act_fn``),
    run an exact (erf) GELU inside the packed ``dense`` kernel instead of as a pass of its own over the
    widest activations (8% of MiniLM's CPU time); returns how many were fused. Call after
    ``pack_for_inference``."""
    fused = 0
    for child in module.modules():
        dense, act = getattr(child, "dense", None), getattr(child, "intermediate_act_fn", None)
        if isinstance(dense, PackedLinear) and dense.activation == "none" and getattr(act, "act", None) is F.gelu:
            dense.activation = "gelu"
            child.intermediate_act_fn = nn.Identity()
            fused += 1
    return fused
