"""`tlcli dpo --lora` under torchrun: two CPU processes on gloo share out the reference log-probs, train through
DDP and finish one run that rank 0 alone writes; the cache then holds every pair's row."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from support.tune import write_jsonl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dpo_lora_on_two_gloo_processes(cli, tiny_lm_dir, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": f"what is {a} + 1?", "chosen": f"the answer is {a + 1}.", "rejected": str(a + 1)}
        for a in range(20, 31)])
    run, home = tmp_path / "ddp", tmp_path / "home"
    env = {**os.environ, "TLCLI_PLUGINS": "tune", "OMP_NUM_THREADS": "1", "TLCLI_HOME": str(home)}
    args = ["dpo", pairs, "--model", tiny_lm_dir, "--lora", "4", "--batch-size", "2", "--epochs", "2", "--precision",
            "fp32", "--device", "cpu", "--val-split", "0", "--quiet", "--json"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                           str(free_port()), "-m", "tlcli", *map(str, args), "--out", run],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["status"] == "finished"  # rank 0 alone reports
    assert summaries[0]["reference"]["computed"] == 11
    assert summaries[0]["steps"] == 6  # 11 pairs: 6 and 5 a rank, 2 a step: 3 steps, 2 epochs
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events].count("run_start") == 1 and events[0]["data"]["world_size"] == 2
    assert (run / "model" / "adapter_model.safetensors").exists()

    # a single process over the same pairs finds every reference row the two ranks wrote
    again = cli(*args, "--out", tmp_path / "single", env={"TLCLI_HOME": str(home)})
    assert again.exit_code == 0, again.stderr[-2000:]
    assert again.json_lines()[-1]["reference"] == {**again.json_lines()[-1]["reference"], "cached": 11, "computed": 0}
