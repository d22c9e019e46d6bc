"""Vision models by every naming users bring: ViTs at a size other than their native one, timm's
``hf-hub:timm/NAME`` naming, ``--weights RUN_DIR`` without ``--model``, and a bad --student in distill.
Models are built small or with pretrained=none; nothing is downloaded."""

from __future__ import annotations

import json

import pytest
import torch

from tlcli.console.errors import UsageError
from tlcli.models.vision import build_vision_model

SMALL = ["--pretrained", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "0",
         "--device", "cpu", "--precision", "fp32", "--quiet"]


@pytest.mark.parametrize("spec", ["vit_b_16", "timm:vit_tiny_patch16_224", "clip:ViT-B-32"])
def test_a_vit_takes_an_image_size_other_than_its_own(spec):
    built = build_vision_model(spec, "none", num_classes=3, image_size=32)
    with torch.inference_mode():
        assert built.model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_an_image_size_a_vit_cannot_take_is_one_line():
    with pytest.raises(UsageError, match="--image-size 33: vit_b_16 takes a multiple of its patch size 16"):
        build_vision_model("vit_b_16", "none", num_classes=3, image_size=33)


def test_a_vit_finetuned_at_32px_predicts(cli, colour_data, tmp_path):
    run = tmp_path / "vit"
    result = cli("finetune", colour_data, "--model", "timm:vit_tiny_patch16_224", *SMALL, "--out", run)
    assert result.exit_code == 0, result.stderr
    predicted = cli("predict", run, colour_data / "class_0" / "000.png", "--json")
    assert predicted.exit_code == 0, predicted.stderr
    assert json.loads(predicted.stdout.splitlines()[0])["label"].startswith("class_")


def test_hf_hub_timm_naming_is_accepted(cli, colour_data, tmp_path, monkeypatch):
    result = cli("finetune", colour_data, "--model", "hf-hub:timm/resnet18.a1_in1k", *SMALL, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    offline = cli("finetune", colour_data, "--model", "hf-hub:timm/resnet18.a1_in1k", "--pretrained", "default",
                  "--epochs", "1", "--out", tmp_path / "r2")
    assert offline.exit_code == 2
    assert "not in the cache" in offline.stderr.strip().splitlines()[-1]
    assert "Traceback" not in offline.stderr


def test_weights_of_a_run_bring_their_model(cli, colour_data, tmp_path):
    first = tmp_path / "first"
    assert cli("finetune", colour_data, "--model", "resnet18", *SMALL, "--out", first).exit_code == 0
    second = tmp_path / "second"
    result = cli("finetune", colour_data, "--weights", first, *SMALL, "--out", second)
    assert result.exit_code == 0, result.stderr
    assert json.loads((second / "model" / "model.json").read_text())["model"] == "resnet18"
    conflict = cli("finetune", colour_data, "--weights", first, "--model", "resnet50", *SMALL, "--out", tmp_path / "c")
    assert conflict.exit_code == 2 and "holds a resnet18 model" in conflict.stderr
    assert len(conflict.stderr.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
    student = cli("distill", colour_data, "--teacher", first, "--student", "notamodel", "--out", tmp_path / "d")
    assert student.exit_code == 2 and "unknown model 'notamodel'" in student.stderr
    assert len(student.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", [["--seed", str(2**63 - 1)], ["--seeds", "1,12345678901234567890"]])
def test_seeds_out_of_range_are_one_line(cli, colour_data, tmp_path, flag):
    result = cli("finetune", colour_data, "--model", "resnet18", *SMALL, *flag, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "4294967295" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_vit_pretrained_at_32px_then_finetuned_from_the_run(cli, colour_data, tmp_path):
    pre = tmp_path / "pre"
    result = cli("pretrain", colour_data, "--model", "timm:vit_tiny_patch16_224", *SMALL, "--out", pre)
    assert result.exit_code == 0, result.stderr
    tuned = tmp_path / "tuned"
    result = cli("finetune", colour_data, "--weights", pre, *SMALL, "--out", tuned)  # the model comes from the run
    assert result.exit_code == 0, result.stderr
    assert json.loads((tuned / "model" / "model.json").read_text())["model"] == "timm:vit_tiny_patch16_224"


def test_pretrained_vit_position_embeddings_are_interpolated(monkeypatch):
    import torchvision

    import tlcli.models.vision as vision

    torch.manual_seed(0)
    native = torchvision.models.vit_b_16().state_dict()  # 224px: 197 positions
    monkeypatch.setattr(vision, "_download_state_dict", lambda url: dict(native))
    built = build_vision_model("vit_b_16", "default", num_classes=3, image_size=64)
    assert built.model.encoder.pos_embedding.shape == (1, 17, 768)  # 4x4 patches + the class token
    assert torch.equal(built.model.encoder.pos_embedding[0, 0], native["encoder.pos_embedding"][0, 0])


@pytest.mark.parametrize("command", [["probe"], ["text", "probe"]])
def test_a_huge_seed_is_one_line_in_commands_that_do_not_train_a_backbone(cli, colour_data, command):
    result = cli(*command, colour_data, "--seed", str(2**63 - 1))
    assert result.exit_code == 2 and "--seed" in result.stderr
    assert "Traceback" not in result.stderr
