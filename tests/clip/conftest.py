"""Tiny random-init open_clip models and generated images: every CLIP test runs offline in seconds."""

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
def tiny_weights(tiny_config, tmp_path_factory) -> Path:
    """Random weights of the tiny model saved as safetensors (seed 123, not tlcli's own seed)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from open_clip import factory

    factory._MODEL_CONFIGS["tiny-test-clip"] = dict(TINY_CONFIG)
    torch.manual_seed(123)
    model = open_clip.create_model("tiny-test-clip")
    path = tmp_path_factory.mktemp("clip-weights") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """3 classes x 12 images (JPEG and PNG, 40 px), one subfolder per class."""
    return make_images(tmp_path_factory.mktemp("clip-images") / "data", per_class=12)


@pytest.fixture(scope="session")
def model_args():
    """model_args(config, weights="none") -> the CLI options for that tiny model, fp32 on the CPU."""

    def make(config: Path, weights: Path | str = "none") -> list[str]:
        return ["--model", str(config), "--pretrained", str(weights), "--precision", "fp32", "--device", "cpu"]

    return make


@pytest.fixture(scope="session")
def json_lines():
    return lambda text: [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def reference_model(tiny_weights):
    """open_clip's own tiny model with the saved weights, and its tokenizer (no tlcli code involved)."""
    import open_clip
    from open_clip import factory
    from safetensors.torch import load_file

    factory._MODEL_CONFIGS["tiny-test-clip"] = dict(TINY_CONFIG)
    model = open_clip.create_model("tiny-test-clip")
    model.load_state_dict(load_file(str(tiny_weights)))
    return model.eval(), open_clip.get_tokenizer("tiny-test-clip")
