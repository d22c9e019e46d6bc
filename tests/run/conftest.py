"""Run-folder behaviour of the image commands: tiny random CLIP models, small generated images, and a
random ResNet-18 for the commands that train a backbone. Everything offline, seconds per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.clip import TINY_CONFIG, make_images


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip-model") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("run-images") / "data", per_class=8)


@pytest.fixture(scope="session")
def clip_args(tiny_config):
    return ["--model", str(tiny_config), "--pretrained", "none", "--precision", "fp32", "--device", "cpu"]
