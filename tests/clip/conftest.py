"""Tiny random-init open_clip models and generated images: every CLIP test runs offline in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

# Colours that make the classes easy to tell apart from pixels; the names carry no signal to a random model.
CLASS_COLOURS = {"cat": (220, 40, 40), "dog": (40, 60, 220), "fish": (40, 200, 60)}


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
