"""Interrupted runs: kill -9, Ctrl-C, and the stop-request file. Resumed runs must end bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from support.runs import wait_for_checkpoint

ARGS = ["--model", "resnet18", "--image-size", "32", "--batch-size", "4", "--workers", "0", "--precision",
        "fp32", "--augment", "light", "--epochs", "3", "--save-every", "2", "--freeze-until", "layer1", "--quiet",
        "--val-split", "0.25"]


def _tlcli(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TLCLI_PLUGINS": "finetune"}
    return subprocess.Popen([sys.executable, "-m", "tlcli", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _reference(colour_data, resnet18_init, tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    done = _tlcli("finetune", colour_data, *ARGS, "--weights", resnet18_init, "--out", run)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def reference_weights(colour_data, resnet18_init, tmp_path_factory):
    return _reference(colour_data, resnet18_init, tmp_path_factory)


def _assert_identical(run, reference):
    resumed = load_file(str(run / "model" / "model.safetensors"))
    assert resumed.keys() == reference.keys()
    different = [k for k in reference if not (resumed[k] == reference[k]).all()]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:5]}"


def test_resume_after_kill_9_is_bit_identical(colour_data, resnet18_init, reference_weights, tmp_path):
    run = tmp_path / "run"
    process = _tlcli("finetune", colour_data, *ARGS, "--weights", resnet18_init, "--out", run)
    wait_for_checkpoint(run / "checkpoints", 4, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (run / "model").exists()
    resumed = _tlcli("finetune", "--resume", run)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _assert_identical(run, reference_weights)
    starts = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()
              if '"run_start"' in line]
    assert starts[-1]["data"]["resumed_from"] >= 4


def test_ctrl_c_checkpoints_exits_130_and_resumes_identically(colour_data, resnet18_init, reference_weights,
                                                              tmp_path):
    run = tmp_path / "run"
    process = _tlcli("finetune", colour_data, *ARGS, "--weights", resnet18_init, "--out", run)
    wait_for_checkpoint(run / "checkpoints", 2, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "--resume" in err
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "run_end" and events[-1]["data"]["status"] == "interrupted"
    assert any(e["kind"] == "checkpoint" and e["data"]["kind"] == "interrupt" for e in events)
    resumed = _tlcli("finetune", "--resume", run)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _assert_identical(run, reference_weights)


def test_stop_request_file_ends_the_run_as_stopped(colour_data, resnet18_init, tmp_path):
    run = tmp_path / "run"
    process = _tlcli("finetune", colour_data, *ARGS, "--weights", resnet18_init, "--out", run)
    wait_for_checkpoint(run / "checkpoints", 2, process)
    (run / "stop-request").write_text("{}")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert last["data"]["status"] == "stopped"


def test_resume_refuses_changed_options(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    result = cli("finetune", "--resume", run, "--lr", "0.1")
    assert result.exit_code == 2 and "--lr" in result.stderr
    missing = cli("finetune", "--resume", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "config.json" in missing.stderr
