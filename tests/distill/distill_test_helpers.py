"""Generated colour-class images for the distillation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

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
