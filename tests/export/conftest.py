"""Generated images and the tiny CLIP config for the export tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.clip import TINY_CONFIG, make_images


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """3 classes x 6 images (JPEG and PNG, 40 px, not square after the crop: resize and crop both matter)."""
    return make_images(tmp_path_factory.mktemp("export-images") / "data", per_class=6)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export-clip") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return path
