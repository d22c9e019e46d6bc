"""Tiny open_clip configs and generated class-folder images for the CLIP tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

# Colours that make the classes easy to tell apart from pixels; the names carry no signal to a random model.
CLASS_COLOURS = {"cat": (220, 40, 40), "dog": (40, 60, 220), "fish": (40, 200, 60)}


def make_images(root: Path, per_class: int, size: int = 40, seed: int = 0, classes=CLASS_COLOURS) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.normal(0, 40, size=(size, size, 3))
            pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
            ext = "jpg" if i % 2 == 0 else "png"
            Image.fromarray(pixels).save(folder / f"{name}{i:02d}.{ext}")
    return root
