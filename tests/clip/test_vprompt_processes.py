"""`tlcli vprompt` as real processes: killed with SIGKILL and resumed (bit-identical), and under torchrun."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from support.runs import finish, tlcli_process, wait_for_checkpoint


def _args(image_folder, tiny_config, tiny_weights, *extra):
    return ["vprompt", image_folder, "--model", tiny_config, "--pretrained", tiny_weights, "--precision", "fp32",
            "--device", "cpu", "--pad", "4", "--templates", "single", "--lr", "0.5", "--val-split", "0.25",
            "--workers", "0", "--quiet", *extra]


@pytest.mark.slow
def test_vprompt_resume_after_kill_9_is_bit_identical(image_folder, tiny_config, tiny_weights, tmp_path):
    env = {"TLCLI_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    args = _args(image_folder, tiny_config, tiny_weights, "--epochs", "3", "--batch-size", "4", "--save-every", "2")
    reference = tmp_path / "reference"
    finish(tlcli_process(*args, "--out", reference, plugins="clip", env=env))
    run = tmp_path / "run"
    process = tlcli_process(*args, "--out", run, plugins="clip", env=env)
    wait_for_checkpoint(run / "checkpoints", 4, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (run / "model").exists()  # it died mid-training
    finish(tlcli_process("vprompt", "--resume", run, plugins="clip", env=env))
    one, two = (load_file(str(folder / "model" / "prompt.safetensors")) for folder in (reference, run))
    assert one.keys() == two.keys()
    different = [key for key in one if not (one[key] == two[key]).all()]
    assert not different, f"resumed prompt differs from the uninterrupted run: {different[:5]}"
    starts = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if '"run_start"' in line]
    assert len(starts) == 2 and starts[-1]["data"]["resumed_from"] >= 4


@pytest.mark.slow
def test_vprompt_on_two_gloo_processes(cli, image_folder, tiny_config, tiny_weights, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "ddp"
    env = {**os.environ, "TLCLI_PLUGINS": "clip", "OMP_NUM_THREADS": "1", "TLCLI_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port), "-m",
         "tlcli", *map(str, _args(image_folder, tiny_config, tiny_weights, "--epochs", "2", "--batch-size", "4",
                                  "--json", "--out", run))],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["status"] == "finished"  # rank 0 alone reports
    assert summaries[0]["steps"] == 8  # 27 training images: 4 batches of 4 per rank and epoch (padded)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds.count("run_start") == 1 and kinds.count("run_end") == 1
    assert events[0]["data"]["world_size"] == 2
    assert not [p for p in run.rglob("*") if ".tmp" in p.name or ".old" in p.name]
    predicted = cli("predict", run, image_folder / "cat", "--json", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.stderr
    assert len(predicted.json_lines()) == 12 + 1  # the records, then the summary


def test_vprompt_under_torchrun_needs_out(cli, image_folder, tiny_config, tiny_weights):
    result = cli(*_args(image_folder, tiny_config, tiny_weights), env={"WORLD_SIZE": "2"})
    assert result.exit_code == 2 and "--out" in result.stderr
