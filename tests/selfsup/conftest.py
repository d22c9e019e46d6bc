from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def make_class_folders(root: Path, per_class: int = 6, size: int = 28, seed: int = 0) -> Path:
    """Three classes told apart by colour, with noise."""
    rng = np.random.default_rng(seed)
    for c, color in enumerate(COLORS):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.normal(0, 45, (size, size, 3)) + color).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    return make_class_folders(tmp_path_factory.mktemp("selfsup") / "data")
