from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def make_class_folders(root: Path, per_class: int = 12, size=(40, 48), seed: int = 0) -> Path:
    """Three classes told apart by colour, with noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    for c, color in enumerate(COLORS):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.normal(0, 45, (size[0], size[1], 3)) + color).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    return make_class_folders(tmp_path_factory.mktemp("colours") / "data")


@pytest.fixture(scope="session")
def resnet18_init(tmp_path_factory) -> Path:
    """Random resnet18 weights saved as safetensors: the 'pretrained' backbone of these tests."""
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(123)
    model = torchvision.models.resnet18()
    # Make BatchNorm statistics non-trivial so "unchanged" means something.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.9, 1.1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path

