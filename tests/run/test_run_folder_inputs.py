"""A run folder is input too: an edited preprocessing.json (resize 100000 made predict allocate ~30 GB; std
[0,0,0] or an unknown interpolation traced back) is refused in one line, exit 2, before any work."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from tlcli.runs.artifacts import write_model

GOOD = {"resize": 36, "crop": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}


@pytest.fixture
def run(tmp_path, image_folder):
    folder = tmp_path / "run"
    model = torchvision.models.resnet18(num_classes=3)
    write_model(folder / "model", kind="image-classifier", plugin="finetune", tensors=model.state_dict(),
                labels=["cat", "dog", "fish"], preprocessing=GOOD, model="resnet18")
    return folder


@pytest.mark.parametrize("change", [{"resize": 100000}, {"crop": 60000}, {"std": [0, 0, 0]},
                                    {"interpolation": "sideways"}, {"mean": [float("nan")] * 3}, {"crop": "32"}])
def test_a_hostile_preprocessing_json_is_one_line(cli, run, image_folder, change):
    (run / "model" / "preprocessing.json").write_text(json.dumps({**GOOD, **change}))
    image = next((image_folder / "cat").iterdir())
    result = cli("predict", run, image)
    assert result.exit_code == 2, result.stderr
    assert "preprocessing.json" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_untouched_run_predicts(cli, run, image_folder):
    result = cli("predict", run, next((image_folder / "cat").iterdir()), "--json")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_or_evaluate_on_a_seeds_or_pretrain_run_says_what_to_do(cli, run, image_folder, tmp_path, command):
    seeds = tmp_path / "seeds"
    (seeds / "seed-1").mkdir(parents=True)
    (run / "model").rename(seeds / "seed-1" / "model")
    target = image_folder if command == "evaluate" else next((image_folder / "cat").iterdir())
    result = cli(command, seeds, target)
    assert result.exit_code == 2 and "--seeds run" in result.stderr and "seed-1" in result.stderr
    pretrain = tmp_path / "pretrain"
    write_model(pretrain / "model", kind="backbone", plugin="selfsup", tensors={"w": torch.zeros(2)},
                model="resnet18")
    result = cli(command, pretrain, target)
    assert result.exit_code == 2 and "tlcli finetune DATA --weights" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
