"""tlcli.models.int8 against the arithmetic it promises, written out here in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tlcli.models.int8 import Int8Linear, activation_steps, int8_available, quantize_linears

pytestmark = pytest.mark.skipif(not int8_available(), reason="this torch has no CPU int8 matrix product")


def expected(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, group: int) -> torch.Tensor:
    """Weights rounded symmetrically per row and group of inputs, each token rounded asymmetrically over its
    own range in 254.9 steps (126.9 where the CPU's int8 product saturates), multiplied in float64."""
    x, weight, bias = x.double(), weight.double(), bias.double()
    blocks = weight.reshape(weight.shape[0], -1, group)
    scales = blocks.abs().amax(-1, keepdim=True) / 127
    dequantised = ((blocks / scales).round().clamp(-127, 127) * scales).reshape(weight.shape)
    low, high = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    step = (high - low).clamp(min=1e-8) / activation_steps()
    offset = low + 128 * step
    codes = ((x - offset) / step).round()
    assert codes.min() >= -128 and codes.max() <= (127 if activation_steps() > 200 else -1)
    return (codes * step + offset) @ dequantised.t() + bias


@pytest.mark.parametrize("group", [None, 64])
def test_int8_linear_computes_the_promised_rounding(group):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 256, generator=generator) * 0.05
    bias = torch.randn(48, generator=generator)
    x = torch.randn(37, 256, generator=generator) * 3 + 1  # off-centre, like a LayerNorm's output
    x[5] = 0.25  # a constant row: no range at all
    layer = Int8Linear(weight, bias, group=group)
    out = layer(x.reshape(37, 1, 256)).reshape(37, 48)
    torch.testing.assert_close(out.double(), expected(x, weight, bias, group or 256), rtol=1e-4, atol=1e-4)
    assert F.cosine_similarity(out, F.linear(x, weight, bias), dim=1).min() > 0.999


def test_the_int8_product_is_exact_over_the_codes_in_use():
    top = 127 if activation_steps() > 200 else -1
    weights = torch.full((512, 8), 127, dtype=torch.int8)
    for code in (top, -128):
        codes = torch.full((4, 512), code, dtype=torch.int8)
        assert int(torch._int_mm(codes, weights)[0, 0]) == 512 * code * 127
        assert int(torch._int_mm(codes, -weights)[0, 0]) == -512 * code * 127


def test_smoothing_moves_scale_between_inputs_and_weights_without_changing_the_product():
    generator = torch.Generator().manual_seed(1)
    weight, bias = torch.randn(32, 64, generator=generator), torch.zeros(32)
    x = torch.randn(20, 64, generator=generator)
    x[:, 3] *= 40  # an outlier feature, as LayerNorm outputs have
    plain = Int8Linear(weight, bias)(x)
    smooth = (x.abs().amax(0) ** 0.5 / weight.abs().amax(0) ** 0.5)
    smoothed = Int8Linear(weight, bias, smooth=smooth)(x)
    exact = F.linear(x, weight, bias)
    assert (smoothed - exact).norm() < 0.5 * (plain - exact).norm()


def test_quantize_linears_takes_the_feed_forward_gelu_and_smooths_from_the_calibration_pass():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.up, self.act, self.down = (torch.nn.Linear(16, 48), torch.nn.Linear(16, 64),
                                                      torch.nn.GELU(), torch.nn.Linear(64, 16))

        def forward(self, x):
            return self.qkv(x)[..., :16] + self.down(self.act(self.up(x)))

    torch.manual_seed(0)
    block = Block().eval()
    x = torch.randn(4, 10, 16)
    reference = block(x)
    quantize_linears(block, lambda: block(x))
    assert isinstance(block.act, torch.nn.Identity) and block.up.gelu and not block.down.gelu
    assert block.qkv.inverse_smooth is not None and block.down.inverse_smooth is None
    assert F.cosine_similarity(block(x), reference, dim=-1).min() > 0.999
