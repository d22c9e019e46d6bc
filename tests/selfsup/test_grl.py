from __future__ import annotations

import math

import pytest
import torch

from tlcli_finetune.dann import DannModel, dann_lambda, grad_reverse, head_name


@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_flips_and_scales_backward(scale):
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, 3, dtype=torch.float64)
    y = grad_reverse(x, scale)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.equal(x.grad, -scale * upstream)


def test_lambda_schedule_is_the_papers():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5, 1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0, 0.5) == pytest.approx(0.5 * (2 / (1 + math.exp(-10)) - 1))
    assert dann_lambda(2.0) == dann_lambda(1.0)  # clamped


def test_domain_loss_pushes_the_backbone_against_the_domain_head():
    """Through the model: the features' gradient from the domain loss is the negative of what it would be
    without the reversal, while the domain head's own gradient is unchanged."""
    from tlcli.models.vision import build_vision_model

    torch.manual_seed(0)
    classifier = build_vision_model("timm:test_resnet", "none", num_classes=3).model.eval()
    model = DannModel(classifier, head_name(classifier)).eval()
    images = torch.randn(2, 3, 24, 24)
    grads = []
    for scale in (1.0, -1.0):  # -1: no reversal (the gradient passes unchanged)
        model.zero_grad()
        _, domain = model(images, scale)
        domain.sum().backward()
        stem = next(p for p in classifier.parameters())
        grads.append((stem.grad.clone(), model.domain[-1].weight.grad.clone()))
    assert torch.allclose(grads[0][0], -grads[1][0], atol=1e-7)
    assert torch.equal(grads[0][1], grads[1][1])
