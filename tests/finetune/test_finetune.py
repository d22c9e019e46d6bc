"""tlcli finetune end to end on a random-init ResNet-18 and generated images."""

from __future__ import annotations

import json
import time

import pytest
from safetensors.torch import load_file


def _fast():
    return ["--model", "resnet18", "--image-size", "32", "--batch-size", "8", "--workers", "0",
            "--precision", "fp32", "--quiet"]


def _events(run):
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_frozen_blocks_and_their_batchnorm_stats_are_bit_identical(cli, colour_data, resnet18_init, tmp_path):
    run = tmp_path / "run"
    result = cli("finetune", colour_data, *_fast(), "--weights", resnet18_init, "--freeze-until", "layer2",
                 "--epochs", "2", "--out", run, "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["status"] == "finished"
    assert summary["trainable_params"] < summary["total_params"]

    before = load_file(str(resnet18_init))
    after = load_file(str(run / "model" / "model.safetensors"))
    frozen = [k for k in before if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")]
    assert any("running_mean" in k for k in frozen)
    for key in frozen:
        assert after[key].dtype == before[key].dtype
        assert (after[key] == before[key]).all(), f"frozen tensor changed: {key}"
    # The trainable part did train, and the head was replaced for 3 classes.
    assert not (after["layer4.0.conv1.weight"] == before["layer4.0.conv1.weight"]).all()
    assert after["fc.weight"].shape == (3, 512)
    # Keys are the backbone's own names (no wrapper prefixes).
    assert set(after) == set(before)


def test_train_bn_lets_frozen_batchnorm_statistics_move(cli, colour_data, resnet18_init, tmp_path):
    run = tmp_path / "run"
    result = cli("finetune", colour_data, *_fast(), "--weights", resnet18_init, "--freeze-until", "layer2",
                 "--train-bn", "--epochs", "1", "--out", run)
    assert result.exit_code == 0, result.stderr
    before = load_file(str(resnet18_init))
    after = load_file(str(run / "model" / "model.safetensors"))
    assert not (after["bn1.running_mean"] == before["bn1.running_mean"]).all()
    assert (after["conv1.weight"] == before["conv1.weight"]).all()


def test_run_folder_contents_and_predict_evaluate(cli, colour_data, resnet18_init, tmp_path):
    run = tmp_path / "run"
    # 4 epochs at 3e-4: 36/36 on 4 seeds on both CPU and CUDA; 3 epochs at the default 1e-3 sometimes
    # stayed at chance (12/36) on a GPU.
    result = cli("finetune", colour_data, *_fast(), "--weights", resnet18_init, "--freeze-until", "layer2",
                 "--epochs", "4", "--lr", "3e-4", "--out", run)
    assert result.exit_code == 0, result.stderr
    for name in ("config.json", "events.jsonl", "metrics.json", "model/model.safetensors", "model/labels.json",
                 "model/preprocessing.json", "model/model.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "model" / "labels.json").read_text()) == ["class_0", "class_1", "class_2"]
    kinds = [e["kind"] for e in _events(run)]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert {"metric", "eval", "checkpoint"} <= set(kinds)
    start = _events(run)[0]["data"]
    assert [(b["name"], b["trainable"]) for b in start["blocks"]][2:5] == [
        ("layer1", False), ("layer2", False), ("layer3", True)]

    predicted = cli("predict", run, colour_data, "--json", "--top-k", "2")
    assert predicted.exit_code == 0, predicted.stderr
    *lines, summary = predicted.json_lines()
    assert len(lines) == 36 and summary["command"] == "predict" and summary["predicted"] == 36
    assert all(len(line["top"]) == 2 and line["top"][0] == {"label": line["label"], "score": line["score"]}
               for line in lines)
    correct = sum(line["label"] == line["path"].split("/")[-2] for line in lines)
    assert correct >= 18  # well above chance (12) after a few steps on colour classes

    report = cli("evaluate", run, colour_data, "--json")
    assert report.exit_code == 0, report.stderr
    (data,) = report.json_lines()
    assert data["command"] == "evaluate" and data["n"] == 36
    assert sum(map(sum, data["confusion"])) == 36
    assert data["metrics"]["accuracy"] == pytest.approx(correct / 36, abs=1e-6)  # evaluate agrees with predict
    assert sum(c["support"] for c in data["metrics"]["per_class"].values()) == 36
    assert (run / "confusion.svg").read_text().startswith("<svg")


def test_unknown_freeze_until_lists_valid_names(cli, colour_data, tmp_path):
    result = cli("finetune", colour_data, *_fast(), "--pretrained", "none", "--freeze-until", "layer9",
                 "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "layer9" in result.stderr and "layer3" in result.stderr and "fc" in result.stderr
    assert "Traceback" not in result.stderr


def test_gradual_unfreezing_unfreezes_one_block_per_period(cli, colour_data, resnet18_init, tmp_path):
    run = tmp_path / "run"
    result = cli("finetune", colour_data, *_fast(), "--weights", resnet18_init, "--freeze-until", "layer3",
                 "--unfreeze-every", "1", "--epochs", "3", "--out", run)
    assert result.exit_code == 0, result.stderr
    changes = [e for e in _events(run) if e["kind"] == "layers"]
    assert [c["data"]["unfrozen"] for c in changes] == [["layer3"], ["layer2"]]
    assert [c["epoch"] for c in changes] == [1, 2]
    states = {b["name"]: b["trainable"] for b in changes[-1]["data"]["blocks"]}
    assert states == {"conv1": False, "bn1": False, "layer1": False, "layer2": True, "layer3": True,
                      "layer4": True, "fc": True}
    before = load_file(str(resnet18_init))
    after = load_file(str(run / "model" / "model.safetensors"))
    assert (after["layer1.0.conv1.weight"] == before["layer1.0.conv1.weight"]).all()
    assert not (after["layer2.0.conv1.weight"] == before["layer2.0.conv1.weight"]).all()


def test_offline_pretrained_fails_fast_naming_cache_and_weights(cli, colour_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    started = time.time()
    result = cli("finetune", colour_data, *_fast(), "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert time.time() - started < 30
    assert "--weights" in result.stderr and "empty-torch-home" in result.stderr


def test_bad_files_are_skipped_and_counted_against_max_bad(cli, colour_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    (data / "class_0" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (data / "class_1" / "empty.jpg").write_bytes(b"")
    ok = cli("finetune", data, *_fast(), "--pretrained", "none", "--epochs", "1", "--max-bad", "10%", "--json",
             "--out", tmp_path / "ok")
    assert ok.exit_code == 0, ok.stderr
    skipped = {entry["path"].rsplit("/", 1)[-1] for entry in ok.json_lines()[-1]["bad_files"]}
    assert skipped == {"zz-broken.png", "empty.jpg"}
    assert "zz-broken.png" in ok.stderr
    from tlcli.runs.events import read_events

    kinds = [(e["kind"], e["data"].get("level")) for e in read_events(tmp_path / "ok" / "events.jsonl")]
    assert kinds[0] == ("run_start", None)  # the log opens with run_start; the skipped files follow it
    assert kinds[1:3] == [("log", "warning")] * 2
    refused = cli("finetune", data, *_fast(), "--pretrained", "none", "--epochs", "1", "--max-bad", "1%",
                  "--out", tmp_path / "refused")
    assert refused.exit_code == 2
    assert "--max-bad" in refused.stderr


def test_config_file_values_and_flag_override(cli, colour_data, tmp_path):
    config = tmp_path / "opts.toml"
    config.write_text('model = "resnet18"\npretrained = "none"\nepochs = 1\nlr = 0.01\nimage-size = 32\n'
                      'workers = 0\n')
    run = tmp_path / "run"
    result = cli("finetune", colour_data, "--config", config, "--lr", "0.002", "--out", run, "--quiet")
    assert result.exit_code == 0, result.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["lr"] == 0.002 and saved["epochs"] == 1 and saved["image_size"] == 32

    config.write_text('epochz = 3\n')
    typo = cli("finetune", colour_data, "--config", config, "--out", tmp_path / "typo")
    assert typo.exit_code == 2 and "epochz" in typo.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--val-split", "1.5"], "--val-split"),
    (["--optimizer", "lamb"], "--optimizer"),
    (["--model", "resnet17"], "resnet18"),
])
def test_bad_options_exit_2_with_one_line(cli, colour_data, tmp_path, args, fragment):
    result = cli("finetune", colour_data, "--pretrained", "none", *args, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
