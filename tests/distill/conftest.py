"""Generated colour-class images, a teacher run exported in the fine-tuning layout, and the tiny CLIP config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.clip import TINY_CONFIG
from support.distill import COLOURS, IMAGENET, make_images


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("labelled") / "data", per_class=8, seed=0)


@pytest.fixture(scope="session")
def colour_val(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("val") / "val", per_class=4, seed=1)


@pytest.fixture(scope="session")
def unlabelled(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("unlabelled") / "shots", per_class=8, seed=2, labelled=False)


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory) -> Path:
    """A small timm ResNet 'teacher' with random weights, exported in the fine-tuning layout (kind
    image-classifier), as `tlcli finetune` writes it: loaded through the predictor surface."""
    import timm
    import torch

    from tlcli.runs.artifacts import write_model

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=3)
    run = tmp_path_factory.mktemp("teacher") / "run"
    write_model(run / "model", kind="image-classifier", plugin="finetune", tensors=model.state_dict(),
                labels=sorted(COLOURS), preprocessing={"resize": 32, "crop": 32, **IMAGENET,
                                                        "interpolation": "bilinear"}, model="timm:test_resnet")
    (run / "config.json").write_text("{}")
    return run


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return path

