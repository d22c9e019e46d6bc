"""Pre-packed bf16 linear layers (tlcli.models.packed) give what the unpacked modules give."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tlcli.models.packed import (ClassTokenOnlyBlock, PackedLinear, PackedSelfAttention, pack_for_inference,
                                 packing_available)

pytestmark = pytest.mark.skipif(not packing_available(torch.device("cpu"), torch.bfloat16),
                                reason="this torch/CPU has no oneDNN bf16 packed linear")
BF16 = torch.bfloat16


@pytest.mark.parametrize("rows", [1, 7, 50, 333])
def test_packed_linear_is_bit_identical_to_f_linear_for_any_row_count(rows):
    torch.manual_seed(0)
    linear = nn.Linear(96, 160).to(BF16)
    packed = PackedLinear.from_linear(linear, rows=64)  # the hint differs from the real row count
    x = torch.randn(3, rows, 96, dtype=BF16)
    with torch.inference_mode():
        assert torch.equal(packed(x), linear(x))


def test_packed_attention_matches_multihead_attention_and_falls_back_for_masks():
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(64, 4, batch_first=True).eval().to(BF16)
    packed = PackedSelfAttention(attention, rows=40)
    x = torch.randn(4, 10, 64, dtype=BF16)
    with torch.inference_mode():
        ours, _ = packed(x, x, x, need_weights=False)
        theirs, _ = attention(x, x, x, need_weights=False)
        torch.testing.assert_close(ours.float(), theirs.float(), atol=0.03, rtol=0.02)
        mask = torch.triu(torch.full((10, 10), float("-inf")), diagonal=1).to(BF16)
        assert torch.equal(packed(x, x, x, need_weights=False, attn_mask=mask)[0],
                           attention(x, x, x, need_weights=False, attn_mask=mask)[0])


def test_mlp_gelu_is_fused_and_open_clip_vit_agrees_with_the_unpacked_tower():
    import open_clip

    torch.manual_seed(0)
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}
    model = open_clip.model.CLIP(**cfg).eval().requires_grad_(False)
    reference32 = copy.deepcopy(model)
    plain = model.to(BF16)
    packed = copy.deepcopy(plain)
    assert pack_for_inference(packed.visual.transformer, rows=17 * 8) == 2 * 3  # attention, fc, proj per block
    mlp = packed.visual.transformer.resblocks[0].mlp
    assert mlp.c_fc.activation == "gelu" and isinstance(mlp.gelu, nn.Identity)
    images = torch.randn(8, 3, 64, 64)
    with torch.inference_mode():
        truth = reference32.encode_image(images)
        ours = packed.encode_image(images.to(BF16)).float()
        theirs = plain.encode_image(images.to(BF16)).float()
    # As close to the fp32 result as open_clip's own bf16 forward is.
    err = lambda out: (1 - F.cosine_similarity(out, truth)).max().item()  # noqa: E731
    assert err(ours) < 1e-3 and err(ours) < 2 * err(theirs) + 1e-5


def test_class_token_only_last_block_gives_the_class_token_of_the_full_block():
    import open_clip

    torch.manual_seed(1)
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}
    model = open_clip.model.CLIP(**cfg).eval().requires_grad_(False).to(BF16)
    pack_for_inference(model.visual.transformer, rows=64)
    last = model.visual.transformer.resblocks[-1]
    tokens = torch.randn(4, 17, 128, dtype=BF16)
    with torch.inference_mode():
        full = last(tokens)
        only = ClassTokenOnlyBlock(last)(tokens)
    assert only.shape == (4, 1, 128)
    torch.testing.assert_close(only.float(), full[:, :1].float(), atol=0.02, rtol=0.01)
