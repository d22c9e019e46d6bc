"""torchrun with two CPU processes on gloo for the three commands that learn from unlabelled images: each
finishes with a trained model and one set of outputs (rank 0 writes the run folder and the summary)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

TINY = ["--model", "timm:test_resnet", "--image-size", "24", "--precision", "fp32", "--workers", "0",
        "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tlcli(*args, torchrun: bool = False, timeout: int = 240) -> str:
    env = {**os.environ, "TLCLI_PLUGINS": "finetune,selfsup", "OMP_NUM_THREADS": "1"}
    launcher = (["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port())]
                if torchrun else [])
    done = subprocess.run([sys.executable, *launcher, "-m", "tlcli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _one_summary(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"expected one summary (rank 0's), got {len(lines)}"
    return json.loads(lines[0])


def _top_level(run) -> list[dict]:
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return [e for e in events if e["kind"] in ("run_start", "run_end") and e["stage"] is None]


def _trained(weights: dict, before: dict | None = None) -> None:
    assert weights and all(torch.isfinite(v.float()).all() for v in weights.values())
    if before is not None:
        assert any(not weights[k].equal(before[k]) for k in before if k in weights), "nothing was trained"


@pytest.mark.slow
def test_pretrain_under_torchrun(colour_data, tmp_path):
    run = tmp_path / "pre"
    summary = _one_summary(_tlcli("pretrain", colour_data, "--task", "rotation", *TINY, "--max-steps", "3",
                                  "--batch-size", "6", "--val", colour_data, "--out", run, "--json", "--quiet",
                                  torchrun=True))
    assert summary["status"] == "finished" and summary["steps"] == 3
    assert 0 <= summary["best"]["value"] <= 1  # rank 0's kNN evaluation, not a rank without one
    starts_ends = _top_level(run)
    assert [e["kind"] for e in starts_ends] == ["run_start", "run_end"]
    assert starts_ends[0]["data"]["world_size"] == 2
    _trained(load_file(str(run / "model" / "model.safetensors")))


@pytest.mark.slow
def test_pseudolabel_under_torchrun(colour_data, tmp_path):
    start = tmp_path / "start"
    _tlcli("finetune", colour_data, *TINY, "--pretrained", "none", "--max-steps", "3", "--batch-size", "6",
           "--out", start, "--quiet")
    run = tmp_path / "pl"
    summary = _one_summary(_tlcli("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", start,
                                  "--threshold", "0.0", "--per-class-cap", "2", "--rounds", "2", *TINY[2:],
                                  "--max-steps", "2", "--batch-size", "6", "--out", run, "--json", "--quiet",
                                  torchrun=True))
    assert summary["status"] == "finished" and [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    for index, row in enumerate(summary["rounds"][1:], start=1):
        saved = json.loads((run / "rounds" / f"round-{index}" / "selection.json").read_text())
        assert row["kept"] == len(saved["kept"]) and 1 <= row["kept"] <= 2 * 3  # at most the cap per class
        assert json.loads((run / "rounds" / f"round-{index}" / "round.json").read_text())["row"] == row
    starts_ends = _top_level(run)
    assert [e["kind"] for e in starts_ends] == ["run_start", "run_end"]
    assert starts_ends[0]["data"]["world_size"] == 2
    round_starts = [e for e in (json.loads(line) for line in (run / "events.jsonl").read_text().splitlines())
                    if e["kind"] == "run_start" and e["stage"]]
    assert [e["stage"] for e in round_starts] == ["round-1", "round-2"]
    assert all(e["data"]["world_size"] == 2 for e in round_starts)
    _trained(load_file(str(run / "model" / "model.safetensors")),
             load_file(str(start / "model" / "model.safetensors")))


@pytest.mark.slow
def test_finetune_domain_adapt_under_torchrun(colour_data, tmp_path):
    run = tmp_path / "dann"
    summary = _one_summary(_tlcli("finetune", colour_data, "--domain-adapt", colour_data, *TINY, "--pretrained",
                                  "none", "--max-steps", "3", "--batch-size", "4", "--out", run, "--json",
                                  "--quiet", torchrun=True))
    assert summary["status"] == "finished" and summary["steps"] == 3
    starts_ends = _top_level(run)
    assert [e["kind"] for e in starts_ends] == ["run_start", "run_end"]
    assert starts_ends[0]["data"]["world_size"] == 2
    exported = load_file(str(run / "model" / "model.safetensors"))
    assert not any(k.startswith(("domain.", "classifier.")) for k in exported)
    _trained(exported)


@pytest.mark.slow
def test_finetune_seeds_under_torchrun(colour_data, tmp_path):
    """Several trainings in one torchrun job: each seed's run is written once (rank 0), all ranks train it."""
    run = tmp_path / "seeds"
    summary = _one_summary(_tlcli("finetune", colour_data, "--domain-adapt", colour_data, *TINY, "--pretrained",
                                  "none", "--max-steps", "2", "--batch-size", "4", "--seeds", "1,2", "--out", run,
                                  "--json", "--quiet", torchrun=True))
    assert [(r["seed"], r["status"]) for r in summary["seeds"]] == [(1, "finished"), (2, "finished")]
    assert summary["mean"] is not None
    for seed in (1, 2):
        starts_ends = _top_level(run / f"seed-{seed}")
        assert [e["kind"] for e in starts_ends] == ["run_start", "run_end"]
        assert starts_ends[0]["data"]["world_size"] == 2 and starts_ends[0]["data"]["config"]["seed"] == seed
        _trained(load_file(str(run / f"seed-{seed}" / "model" / "model.safetensors")))


@pytest.mark.parametrize("task", ["rotation", "jigsaw", "simclr", "mae"])
def test_pretext_training_goes_through_the_models_forward(colour_data, task):
    """DistributedDataParallel synchronises only what its forward computed: a training step that called
    ``model.head(model.features(x))`` trained each rank on its own gradients."""
    from tlcli.data.bad_files import BadFiles
    from tlcli_selfsup.config import PretrainConfig
    from tlcli_selfsup.images import preprocessing_for, unlabelled_images
    from tlcli_selfsup.pretrain_task import PretrainTask

    cfg = PretrainConfig(data=[str(colour_data)], task=task, model="timm:test_resnet", image_size=24)
    pre = preprocessing_for(cfg.model, "none", 24)
    task_ = PretrainTask(cfg, unlabelled_images(cfg.data, pre, BadFiles(), 0), None, pre, run=None)
    model = task_.build_model()
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(1))
    data = task_.train_dataset()
    batch = task_.collate([data[(i, i)] for i in range(4)])
    task_.training_step(model, batch).backward()
    assert len(calls) == 1
    assert all(p.grad is not None for p in model.head.parameters())
