"""torchrun: two CPU processes share the embedding of an index build and rank 0 writes the same index."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

QUERIES = ["how do I install it offline", "what does exit code 2 mean", "aphids on tomatoes", "umbrella"]


def _tlcli(args, cwd, launcher=()):
    env = {**os.environ, "TLCLI_PLUGINS": "rag", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, *launcher, "-m", "tlcli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _hits(root, index):
    out = []
    for query in QUERIES:
        lines = _tlcli(["rag", "search", query, "--index", index, "--mode", "dense", "-k", "3", "--json"], root)
        *hits, summary = [json.loads(line) for line in lines.stdout.splitlines() if line.strip()]
        assert summary["command"] == "rag search" and summary["hits"] == len(hits)
        out.append(hits)
    return out


def test_torchrun_index_equals_one_process(small_index, tmp_path):
    docs, notes = str(small_index / "docs"), str(small_index / "notes")
    _tlcli(["rag", "index", docs, notes, "--index", ".one", "--device", "cpu", "--precision", "fp32",
            "--out", "runs/one", "--quiet"], tmp_path)
    _tlcli(["rag", "index", docs, notes, "--index", ".two", "--device", "cpu", "--precision", "fp32",
            "--out", "runs/two", "--quiet"], tmp_path,
           launcher=["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533"])
    one, two = _hits(tmp_path, ".one"), _hits(tmp_path, ".two")
    for a, b in zip(one, two):
        assert [(h["source"], h["start"]) for h in a] == [(h["source"], h["start"]) for h in b]
        assert all(abs(x["score"] - y["score"]) < 1e-4 for x, y in zip(a, b))
    events = [json.loads(line) for line in (tmp_path / "runs" / "two" / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events].count("run_start") == 1  # only rank 0 writes the run
    assert events[-1]["kind"] == "run_end" and events[-1]["data"]["status"] == "finished"
