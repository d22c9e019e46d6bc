"""--skip-nonfinite never leaves non-finite weights behind, an export of NaN weights is refused, and predict
refuses a model whose weights are not finite (it printed "score: null" for every image)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from tlcli.runs.artifacts import write_model
from tlcli.console.errors import JobFailed

SMALL = ["--model", "resnet18", "--pretrained", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
         "--workers", "0", "--device", "cpu", "--precision", "fp32", "--quiet"]


def test_lr_1e30_with_skip_nonfinite_ends_in_one_line_and_no_nan_model(cli, colour_data, tmp_path):
    run = tmp_path / "run"
    result = cli("finetune", colour_data, *SMALL, "--lr", "1e30", "--skip-nonfinite", "--out", run)
    assert result.exit_code == 1, result.stderr
    assert "non-finite" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert not (run / "model").exists()
    end = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()][-1]
    assert end["kind"] == "run_end" and end["data"]["status"] == "failed"


def test_a_model_with_nan_weights_is_never_exported(tmp_path):
    with pytest.raises(JobFailed, match="not finite"):
        write_model(tmp_path / "m", kind="image-classifier", plugin="finetune",
                    tensors={"w": torch.tensor([1.0, math.nan])}, labels=["a", "b"])
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_predict_refuses_a_model_with_nan_weights(cli, colour_data, tmp_path):
    run = tmp_path / "run"
    assert cli("finetune", colour_data, *SMALL, "--out", run).exit_code == 0
    weights = run / "model" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["fc.weight"][0, 0] = math.nan
    save_file(tensors, str(weights))
    result = cli("predict", run, colour_data / "class_0" / "000.png")
    assert result.exit_code == 2 and "not finite" in result.stderr and "fc.weight" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
