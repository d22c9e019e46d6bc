"""`tlcli finetune --lora`: the run folder (adapters in PEFT's format, the head beside them), predict and
evaluate on the rebuilt base, `tlcli merge`, checkpoints without the frozen base, exact resume, seeds, config
files, torchvision/timm ViTs and CNNs, open_clip towers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from support.runs import wait_for_checkpoint

VIT = ["--model", "timm:test_vit", "--pretrained", "none", "--image-size", "32", "--batch-size", "8", "--workers",
       "0", "--precision", "fp32", "--device", "cpu", "--augment", "none"]


def _images(colour_data: Path, n: int = 6) -> list[Path]:
    return sorted(colour_data.rglob("*.png"))[:: max(1, 36 // n)][:n]


def _probs(predictor, paths) -> torch.Tensor:
    batch = torch.stack([predictor.transform(Image.open(p).convert("RGB")) for p in paths])
    return predictor.predict(batch)


def test_vit_lora_run_folder_predict_peft_and_merge(cli, colour_data, tmp_path):
    from peft import PeftModel

    from tlcli.models.vision import build_vision_model
    from tlcli_finetune.predictor import load_predictor

    run = tmp_path / "run"
    result = cli("finetune", colour_data, *VIT, "--epochs", "2", "--lr", "0.01", "--lora", "4", "--json", "--out", run)
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["lora"] == {"rank": 4, "alpha": 8.0, "dropout": 0.0}
    # trainable: the new head (64 -> 3) and rank-4 adapters on qkv, proj, fc1, fc2 of the 6 blocks
    adapters = 6 * 4 * ((64 + 192) + (64 + 64) + (64 + 192) + (192 + 64))
    assert summary["trainable_params"] == 64 * 3 + 3 + adapters

    model_dir = run / "model"
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["kind"] == "image-classifier" and meta["model"] == "timm:test_vit"
    assert meta["lora"]["rank"] == 4 and len(meta["lora"]["targets"]) == 24 and meta["lora"]["root"] == ""
    assert meta["lora"]["base"] == {"model": "timm:test_vit", "pretrained": "none", "weights": None, "seed": 0,
                                    "image_size": 32}
    assert set(load_file(str(model_dir / "model.safetensors"))) == {"head.weight", "head.bias"}
    config = json.loads((model_dir / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and "blocks.5.mlp.fc2" in config["target_modules"]
    # checkpoints: adapters and head, no copy of the frozen base
    for folder in (run / "checkpoints").iterdir():
        keys = set(load_file(str(folder / "model.safetensors")))
        assert keys and all(".lora_" in k or k.startswith("head.") for k in keys), sorted(keys)[:5]

    paths = _images(colour_data)
    predictor = load_predictor(model_dir)
    probs = _probs(predictor, paths)

    # PEFT alone: the base rebuilt as the engine built it (seeded), the adapter folder, the head beside it
    torch.manual_seed(0)
    base = build_vision_model("timm:test_vit", "none", num_classes=3, image_size=32).model
    base.load_state_dict(load_file(str(model_dir / "model.safetensors")), strict=False)
    peft_model = PeftModel.from_pretrained(base, model_dir / "adapter").eval()
    batch = torch.stack([predictor.transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        assert torch.allclose(peft_model(batch).softmax(dim=1), probs, atol=1e-6, rtol=0)

    evaluated = cli("evaluate", run, colour_data, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr

    merged = tmp_path / "merged"
    done = cli("merge", run, "--out", merged, "--json")
    assert done.exit_code == 0, done.stderr
    assert done.json_lines()[-1]["merged_modules"] == 24
    merged_meta = json.loads((merged / "model" / "model.json").read_text())
    assert "lora" not in merged_meta and merged_meta["merged_from"]["rank"] == 4
    plain_keys = set(build_vision_model("timm:test_vit", "none", num_classes=3, image_size=32).model.state_dict())
    assert set(load_file(str(merged / "model" / "model.safetensors"))) == plain_keys
    assert torch.allclose(_probs(load_predictor(merged / "model"), paths), probs, atol=1e-5, rtol=0)
    again = cli("evaluate", merged, colour_data, "--json")
    assert again.json_lines()[-1]["metrics"]["accuracy"] == evaluated.json_lines()[-1]["metrics"]["accuracy"]
    # the merged run is a plain run: --weights takes it; the adapter run itself is refused in one line
    refused = cli("finetune", colour_data, *VIT, "--epochs", "1", "--weights", run, "--out", tmp_path / "w")
    assert refused.exit_code == 2 and "tlcli merge" in refused.stderr
    assert len(refused.stderr.strip().splitlines()[-1:]) == 1


def test_merge_refusals(cli, colour_data, tmp_path):
    run = tmp_path / "plain"
    assert cli("finetune", colour_data, *VIT, "--max-steps", "1", "--out", run).exit_code == 0
    nothing = cli("merge", run, "--out", tmp_path / "m")
    assert nothing.exit_code == 2 and "no --lora" in nothing.stderr and not (tmp_path / "m").exists()
    lora = tmp_path / "lora"
    assert cli("finetune", colour_data, *VIT, "--max-steps", "1", "--lora", "2", "--out", lora).exit_code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        refused = cli("merge", lora, "--out", mine, *extra)
        assert refused.exit_code == 2, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert (mine / "notes.txt").read_text() == "mine" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    same = cli("merge", lora, "--out", lora, "--overwrite")
    assert same.exit_code == 2 and "being merged" in same.stderr and (lora / "model" / "adapter").is_dir()


@pytest.mark.parametrize("args, fragment", [
    (["--freeze-until", "blocks.2"], "--freeze-until"),
    (["--unfreeze-every", "1"], "--unfreeze-every"),
    (["--lora-targets", "nothing_like_this"], "matched nothing"),
])
def test_lora_with_freezing_or_unmatched_targets_is_one_line(cli, colour_data, tmp_path, args, fragment):
    result = cli("finetune", colour_data, *VIT, "--lora", "2", *args, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()[-1:]) == 1


def test_cnn_lora_adapts_spatial_convs_and_predict_checks_the_base(cli, colour_data, resnet18_init, tmp_path):
    from tlcli_finetune.predictor import load_predictor

    weights = tmp_path / "resnet18.safetensors"
    weights.write_bytes(resnet18_init.read_bytes())
    run = tmp_path / "run"
    result = cli("finetune", colour_data, "--model", "resnet18", "--weights", weights, "--image-size", "32",
                 "--batch-size", "8", "--workers", "0", "--precision", "fp32", "--epochs", "1", "--lora", "2",
                 "--out", run)
    assert result.exit_code == 0, result.stderr
    meta = json.loads((run / "model" / "model.json").read_text())
    targets = meta["lora"]["targets"]
    assert targets[0] == "conv1" and "layer1.0.conv2" in targets and "layer2.0.downsample.0" not in targets
    assert not any(t.endswith("conv3") or t == "fc" for t in targets)
    init = load_file(str(resnet18_init))
    rest = load_file(str(run / "model" / "model.safetensors"))
    # the frozen BatchNorm layers kept their statistics (eval mode), saved with the head
    assert torch.equal(rest["layer3.1.bn2.running_mean"], init["layer3.1.bn2.running_mean"])
    assert {k for k in rest if not k.startswith("fc.")} == {k for k in init if "running" in k or "num_batches" in k}
    paths = _images(colour_data, 4)
    before = _probs(load_predictor(run / "model"), paths)
    merged = cli("merge", run, "--out", tmp_path / "merged")
    assert merged.exit_code == 0, merged.stderr
    assert torch.allclose(_probs(load_predictor(tmp_path / "merged" / "model"), paths), before, atol=1e-5, rtol=0)
    # other weights under the same file name: the adapters no longer fit their base, and predict says so
    torch.manual_seed(9)
    save_file({k: (v + 0.01 * torch.randn_like(v)) if v.is_floating_point() else v for k, v in init.items()},
              str(weights))
    refused = cli("evaluate", run, colour_data)
    assert refused.exit_code == 2 and "not those the adapters were trained on" in refused.stderr


def test_open_clip_tower_lora_loads_with_peft(cli, colour_data, tmp_path):
    import open_clip
    from open_clip import factory
    from peft import PeftModel

    from support.clip import TINY_CONFIG
    from tlcli_finetune.predictor import load_predictor

    factory._MODEL_CONFIGS["tiny-test-clip"] = dict(TINY_CONFIG)
    run = tmp_path / "run"
    result = cli("finetune", colour_data, "--model", "clip:tiny-test-clip", "--pretrained", "none", "--image-size",
                 "32", "--batch-size", "8", "--workers", "0", "--precision", "fp32", "--epochs", "1", "--lora", "2",
                 "--lr", "0.01", "--out", run)
    assert result.exit_code == 0, result.stderr
    record = json.loads((run / "model" / "model.json").read_text())["lora"]
    assert record["root"] == "visual" and "transformer.resblocks.0.attn" in record["targets"]
    assert "transformer.resblocks.0.mlp.c_fc" in record["targets"]
    config = json.loads((run / "model" / "adapter" / "adapter_config.json").read_text())
    assert "transformer.resblocks.1.attn.in_proj_weight" in config["target_parameters"]

    paths = _images(colour_data, 3)
    predictor = load_predictor(run / "model")
    batch = torch.stack([predictor.transform(Image.open(p).convert("RGB")) for p in paths])
    _, features = predictor.predict_with_features(batch)
    torch.manual_seed(0)  # the run's seed: the engine seeds before building the random base
    visual = open_clip.create_model("tiny-test-clip", force_image_size=32).visual
    loaded = PeftModel.from_pretrained(visual, run / "model" / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(batch), features, atol=1e-6, rtol=0)


ARGS = [*VIT, "--epochs", "3", "--save-every", "2", "--lora", "4", "--lr", "0.01", "--quiet", "--val-split", "0.25"]


def _tlcli(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TLCLI_PLUGINS": "finetune", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tlcli", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_lora_resume_after_kill_9_is_bit_identical(colour_data, tmp_path):
    reference = tmp_path / "reference"
    done = _tlcli("finetune", colour_data, *ARGS, "--out", reference)
    assert done.wait(timeout=300) == 0, done.stderr.read()
    run = tmp_path / "run"
    process = _tlcli("finetune", colour_data, *ARGS, "--out", run)
    wait_for_checkpoint(run / "checkpoints", 4, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (run / "model").exists()
    resumed = _tlcli("finetune", "--resume", run)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        one, two = (load_file(str(r / "model" / name)) for r in (reference, run))
        assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one), name
    assert (json.loads((run / "model" / "model.json").read_text())["lora"]["base_digest"]
            == json.loads((reference / "model" / "model.json").read_text())["lora"]["base_digest"])


def test_seeds_and_config_file_with_lora(cli, colour_data, tmp_path):
    config = tmp_path / "lora.toml"
    config.write_text('lora = 2\nlora_targets = ["qkv"]\nseeds = [1, 2]\nepochs = 1\n')
    result = cli("finetune", colour_data, *VIT, "--config", config, "--json", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert [s["seed"] for s in summary["seeds"]] == [1, 2]
    for seed in (1, 2):
        record = json.loads((tmp_path / "run" / f"seed-{seed}" / "model" / "model.json").read_text())["lora"]
        assert record["targets"] == [f"blocks.{i}.attn.qkv" for i in range(6)] and record["base"]["seed"] == seed
    digests = {json.loads((tmp_path / "run" / f"seed-{s}" / "model" / "model.json").read_text())["lora"]
               ["base_digest"] for s in (1, 2)}
    assert len(digests) == 2  # a random base is drawn by each seed, and recorded per seed


@pytest.mark.slow
def test_lora_ddp_on_gloo_matches_single_process(colour_data, tmp_path):
    common = [*VIT[:VIT.index("--batch-size")], "--workers", "0", "--precision", "fp32", "--device", "cpu",
              "--augment", "none", "--epochs", "2", "--quiet", "--optimizer", "sgd", "--lr", "0.05", "--lora", "2"]
    env = {**os.environ, "TLCLI_PLUGINS": "finetune", "OMP_NUM_THREADS": "1"}
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    for args in ([sys.executable, "-m", "tlcli", "finetune", colour_data, *common, "--batch-size", "8",
                  "--out", single],
                 [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
                  "-m", "tlcli", "finetune", colour_data, *common, "--batch-size", "4", "--out", ddp]):
        done = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        one, two = (load_file(str(r / "model" / name)) for r in (single, ddp))
        for key in one:
            torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)


def test_lora_with_domain_adaptation_and_tui(cli, colour_data, tmp_path):
    """DANN: the domain classifier trains in full beside the adapters and is dropped from the export; --tui
    without a terminal falls back to plain progress."""
    run = tmp_path / "run"
    result = cli("finetune", colour_data, *VIT, "--max-steps", "2", "--lora", "2", "--domain-adapt", colour_data,
                 "--tui", "--json", "--out", run)
    assert result.exit_code == 0, result.stderr
    assert "--tui ignored" in result.stderr
    summary = result.json_lines()[-1]
    domain = 64 * 256 + 256 + 256 * 256 + 256 + 256 + 1
    assert summary["trainable_params"] == 64 * 3 + 3 + domain + 6 * 2 * (256 + 128 + 256 + 256)
    assert set(load_file(str(run / "model" / "model.safetensors"))) == {"head.weight", "head.bias"}
    assert cli("evaluate", run, colour_data).exit_code == 0
