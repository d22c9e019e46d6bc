"""`tlcli distill` under torchrun: two CPU processes on gloo finish one run that rank 0 alone writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distill_with_feature_loss_on_two_gloo_processes(cli, colour_data, colour_val, teacher_run, tmp_path):
    run, home = tmp_path / "ddp", tmp_path / "home"
    env = {**os.environ, "TLCLI_PLUGINS": "distill,finetune", "OMP_NUM_THREADS": "1", "TLCLI_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
         "-m", "tlcli", "distill", colour_data, "--teacher", teacher_run, "--val", colour_val, "--student",
         "timm:lcnet_035", "--pretrained", "none", "--image-size", "32", "--batch-size", "4", "--workers", "0",
         "--precision", "fp32", "--device", "cpu", "--epochs", "2", "--feature-loss", "--quiet", "--json",
         "--out", run], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["status"] == "finished"  # rank 0 alone reports
    assert summaries[0]["steps"] == 6  # 24 images, 4 per rank and step, 2 ranks, 2 epochs
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds.count("run_start") == 1 and kinds.count("run_end") == 1
    assert events[0]["data"]["world_size"] == 2
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    assert not [p for p in run.rglob("*") if ".tmp" in p.name or ".old" in p.name]  # no leftovers

    # the teacher cache (written by rank 0 only): one complete row per image, no temporaries
    rows = [p for p in home.rglob("*.npy")]
    assert len(rows) == 36 and not [p for p in home.rglob("*") if ".tmp" in p.name]
    # each rank computed half of the rows and a sum across ranks gave both the whole table: the rows equal
    # a single process's (a row lost or counted twice would not)
    alone_home = tmp_path / "alone-home"
    alone = cli("distill", colour_data, "--teacher", teacher_run, "--val", colour_val, "--student",
                "timm:lcnet_035", "--pretrained", "none", "--image-size", "32", "--batch-size", "4", "--workers",
                "0", "--precision", "fp32", "--device", "cpu", "--max-steps", "1", "--feature-loss", "--quiet",
                "--out", tmp_path / "alone", env={"TLCLI_HOME": str(alone_home)})
    assert alone.exit_code == 0, alone.stderr
    for row in rows:
        single = np.load(alone_home / row.relative_to(home), allow_pickle=False)
        np.testing.assert_allclose(np.load(row, allow_pickle=False), single, rtol=1e-5, atol=1e-6)
    exported = load_file(str(run / "model" / "model.safetensors"))
    assert exported and not any("regressor" in key or key.startswith("module.") for key in exported)
    predicted = cli("predict", run, colour_val, "--json", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.stderr
    assert len(predicted.json_lines()) == 12 + 1  # the records, then the summary
