"""torchrun with two CPU processes on gloo: same result as one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

COMMON = ["--model", "resnet18", "--image-size", "32", "--workers", "0", "--device", "cpu", "--precision", "fp32", "--augment", "none",
          "--epochs", "2", "--freeze-until", "layer4", "--quiet", "--optimizer", "sgd", "--lr", "0.05"]


def _run(args, timeout=300):
    env = {**os.environ, "TLCLI_PLUGINS": "finetune", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_ddp_on_gloo_matches_single_process(colour_data, resnet18_init, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _run(["-m", "tlcli", "finetune", colour_data, *COMMON, "--batch-size", "8", "--weights", resnet18_init,
          "--out", single])
    _run(["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517", "-m", "tlcli",
          "finetune", colour_data, *COMMON, "--batch-size", "4", "--weights", resnet18_init, "--out", ddp])
    one, two = (load_file(str(run / "model" / "model.safetensors")) for run in (single, ddp))
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    # Only rank 0 writes: one run_start, one run_end, and world_size recorded.
    events = [json.loads(line) for line in (ddp / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events].count("run_start") == 1
    assert [e["kind"] for e in events].count("run_end") == 1
    assert events[0]["data"]["world_size"] == 2
    evals = [e["data"]["metrics"]["val_accuracy"] for e in events if e["kind"] == "eval"]
    single_evals = [json.loads(line)["data"]["metrics"]["val_accuracy"]
                    for line in (single / "events.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals == single_evals  # validation is all-reduced over both ranks' shards
