"""`tlcli vprompt`: only the padding prompt trains; CLIP stays bit-identical; predict and zeroshot use it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file


def _train_args(image_folder, tiny_config, tiny_weights, model_args, out):
    return ["vprompt", image_folder, *model_args(tiny_config, tiny_weights), "--pad", "4", "--epochs", "2",
            "--templates", "single", "--batch-size", "8", "--lr", "0.5", "--val-split", "0.25", "--out", out,
            "--json", "--quiet"]


def test_pad_prompter_adds_only_border_pixels():
    from tlcli_clip.vprompt import PadPrompter

    prompter = PadPrompter(image_size=32, pad=4)
    x = torch.randn(2, 3, 32, 32)
    delta = prompter(x) - x
    assert torch.equal(delta[:, :, 4:28, 4:28], torch.zeros(2, 3, 24, 24))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[4:28, 4:28] = False
    assert (delta[:, :, border] != 0).all()
    assert prompter.num_params() == 2 * 3 * 4 * 32 + 2 * 3 * 24 * 4  # = 3 * (32^2 - 24^2)
    from tlcli.console.errors import UsageError

    with pytest.raises(UsageError, match="--pad 16"):
        PadPrompter(image_size=32, pad=16)


def test_training_changes_only_the_prompt_and_every_clip_weight_stays_bit_identical(
        cli, image_folder, tiny_config, tiny_weights, model_args, tmp_path, monkeypatch):
    import tlcli_clip.vprompt as vprompt

    built = []
    original = vprompt.build_prompted

    def capture(*args, **kwargs):
        model = original(*args, **kwargs)
        built.append((model, {k: v.detach().clone() for k, v in model.prompter.state_dict().items()}))
        return model

    monkeypatch.setattr(vprompt, "build_prompted", capture)
    result = cli(*_train_args(image_folder, tiny_config, tiny_weights, model_args, tmp_path / "run"))
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["status"] == "finished" and summary["steps"] > 0
    assert summary["trainable_params"] == 3 * (32 * 32 - 24 * 24)

    model, initial_prompt = built[0]
    clip_weights = load_file(str(tiny_weights))
    visual = {f"visual.{k}": v for k, v in model.visual.state_dict().items()}
    assert visual and set(visual) <= set(clip_weights)
    for key, value in visual.items():
        assert torch.equal(value.float(), clip_weights[key].float()), f"CLIP weight changed: {key}"
    trained = model.prompter.state_dict()
    assert any(not torch.equal(trained[k], initial_prompt[k]) for k in trained)  # the prompt did train

    exported = load_file(str(tmp_path / "run" / "model" / "prompt.safetensors"))
    assert set(exported) == {"pad_up", "pad_down", "pad_left", "pad_right", "head"}
    for key in ("pad_up", "pad_down", "pad_left", "pad_right"):
        assert torch.equal(exported[key], trained[key])
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["kind"] == "clip-vprompt" and meta["pad"] == 4


def test_predict_and_zeroshot_vprompt_agree(cli, image_folder, tiny_config, tiny_weights, model_args, tmp_path):
    run = tmp_path / "run"
    assert cli(*_train_args(image_folder, tiny_config, tiny_weights, model_args, run)).exit_code == 0
    predicted = cli("predict", run, image_folder / "cat", "--json", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.stderr
    zeroshot = cli("zeroshot", image_folder / "cat", "--vprompt", run, "--json", "--device", "cpu", "--top-k", "3")
    assert zeroshot.exit_code == 0, zeroshot.stderr
    by_path = {line["path"]: line for line in predicted.json_lines()[:-1]}
    lines = zeroshot.json_lines()[:-1]
    assert len(lines) == len(by_path) == 12
    for line in lines:
        assert line["label"] == by_path[line["path"]]["label"]
        assert line["score"] == pytest.approx(by_path[line["path"]]["score"], abs=1e-5)
    evaluated = cli("zeroshot", image_folder, "--vprompt", run, "--eval", "--json", "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert evaluated.json_lines()[-1]["metrics"]["n"] == 36
    both = cli("zeroshot", image_folder, "--vprompt", run, "--prompt", run, "--labels", "cat,dog")
    assert both.exit_code == 2


def test_compare_gains_a_vprompt_row(cli, image_folder, tiny_config, tiny_weights, model_args, tmp_path):
    result = cli("compare", image_folder, *model_args(tiny_config, tiny_weights), "--shots", "4", "--no-coop",
                 "--vprompt", "--vprompt-epochs", "1", "--vprompt-pad", "4", "--templates", "single", "--out", tmp_path / "cmp", "--json",
                 "--quiet")
    assert result.exit_code == 0, result.stderr
    rows = [line for line in result.json_lines() if "method" in line]
    vprompt = [row for row in rows if row["method"] == "vprompt"]
    assert len(vprompt) == 1 and vprompt[0]["shots"] == 4
    assert vprompt[0]["trainable_params"] == 3 * (32 * 32 - 24 * 24)
    assert 0.0 <= vprompt[0]["accuracy"] <= 1.0
    assert (tmp_path / "cmp" / "vprompt-4shot" / "model" / "prompt.safetensors").is_file()
