"""Generated colour-class images for the distillation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tlcli_distill.teachers import Teacher

COLOURS = {"blue": (40, 40, 200), "green": (40, 200, 40), "red": (200, 40, 40)}
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def make_images(root: Path, per_class: int, seed: int, labelled: bool = True, size: int = 36) -> Path:
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.normal(0, 45, (size, size, 3)) + colour).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name if labelled else seed}-{name}-{i:02d}.png")
    return root


# --- in-process pieces: a tiny teacher, a tiny student, decoded images ------------------------------------------

PRE = {"resize": 16, "crop": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}


class TinyTeacher(Teacher):
    """BatchNorm and Dropout: in train mode its outputs would change and its statistics would move. Its
    penultimate features (with_features=True) are the 4 pooled channels its last Linear reads."""

    def __init__(self):
        import torch
        from torch import nn

        from tlcli_distill.data import eval_transform

        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 3)
        self.labels, self.key, self.description, self.short_side = ["a", "b", "c"], "tiny-test", "tiny", 16
        self.transform = eval_transform(PRE)
        self.calls = 0
        self.modes_seen: set[bool] = set()

    def forward(self, images, with_features: bool = False):
        self.calls += 1
        self.modes_seen.add(self.training)
        features = self.body(images)
        logits = self.head(features)
        return (logits, features) if with_features else logits


def decoded_images(n: int, labelled: bool):
    from tlcli_distill.data import Decoded
    from tlcli_distill.loss import UNLABELLED

    rng = np.random.default_rng(0)
    out = Decoded()
    for i in range(n):
        out.paths.append(Path(f"img{i}.png"))
        out.labels.append(i % 3 if labelled else UNLABELLED)
        out.images.append(Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)))
    return out


def tiny_student():
    import torch
    from torch import nn

    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
