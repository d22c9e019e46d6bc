"""SIGTERM to the whole process group (what `timeout`, SLURM, systemd and `kill -- -PGID` send) reaches the
DataLoader workers too: they ignore it, the main process stops the run as for a stop request ("stopped",
best model exported, metrics.json agreeing with run_end, exit 0), and a --resume stopped the same way too."""

from __future__ import annotations

import json
import os
import signal

import pytest

from support.runs import tlcli_process, wait_for_checkpoint

ARGS = ["--model", "resnet18", "--pretrained", "none", "--image-size", "32", "--batch-size", "2", "--workers", "2",
        "--precision", "fp32", "--device", "cpu", "--epochs", "40", "--save-every", "1", "--val-split", "0.25",
        "--freeze-until", "layer4", "--quiet"]


def _stop_group(process, run, after_step: int) -> str:
    wait_for_checkpoint(run / "checkpoints", after_step, process, timeout=300)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "killed by signal" not in err, err[-3000:]
    return err


def _ended_stopped(run) -> dict:
    end = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert end["kind"] == "run_end" and end["data"]["status"] == "stopped", end
    assert (run / "model" / "model.safetensors").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "stopped" and metrics["steps"] == end["data"]["steps"]
    return metrics


@pytest.mark.timeout(900)
def test_sigterm_to_the_process_group_stops_a_run_with_workers(image_folder, tmp_path):
    run = tmp_path / "run"
    process = tlcli_process("finetune", image_folder, *ARGS, "--out", run, start_new_session=True)
    _stop_group(process, run, 1)
    first = _ended_stopped(run)
    resumed = tlcli_process("finetune", "--resume", run, start_new_session=True)
    _stop_group(resumed, run, first["steps"] + 2)
    assert _ended_stopped(run)["steps"] > first["steps"]
