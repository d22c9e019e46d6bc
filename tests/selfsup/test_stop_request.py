"""The monitor's stop request is written in the folder of the run the user watches: for `finetune --seeds`
and `pseudolabel` that is the whole run, while each seed / round trains in a folder of its own. The request
must stop the training in progress (it was read only from the inner folder, so it was never seen)."""

from __future__ import annotations

import json

import pytest

from tlcli.cli.report import summary_problems
from tlcli.engine.task import Task
from tlcli.runs.paths import STOP_REQUEST_FILE

TINY = ["--model", "timm:test_resnet", "--image-size", "24", "--precision", "fp32", "--workers", "0",
        "--batch-size", "6"]


@pytest.fixture
def stop_outer_run(monkeypatch, tmp_path):
    """Arms a stop request: after the first optimizer step of the next fit, `OUTER/stop-request` is
    written, as the monitor's `s` key does. Returns the steps the fits reached."""
    def arm() -> list[int]:
        seen: list[int] = []

        def on_step(self, model, step):
            seen.append(step)
            if len(seen) == 1:
                (tmp_path / "outer" / STOP_REQUEST_FILE).write_text("{}")

        monkeypatch.setattr(Task, "on_optimizer_step", on_step)
        return seen

    return arm


def _summary(done) -> dict:
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary_problems(summary) == []
    return summary


def test_a_stop_request_on_a_seeds_run_stops_the_seed_in_training(cli, colour_data, tmp_path, stop_outer_run):
    seen = stop_outer_run()
    summary = _summary(cli("finetune", colour_data, *TINY, "--pretrained", "none", "--max-steps", "4",
                           "--seeds", "1,2", "--out", "outer", "--json", "--quiet"))
    assert [(r["seed"], r["status"]) for r in summary["seeds"]] == [(1, "stopped")]  # seed 2 not started
    assert summary["status"] == "stopped" and summary["mean"] == summary["seeds"][0]["best"]["value"]
    assert seen == [1]
    assert not (tmp_path / "outer" / STOP_REQUEST_FILE).exists(), "honoured: a --resume must not stop again"
    assert not (tmp_path / "outer" / "seed-2").exists()
    assert (tmp_path / "outer" / "seed-1" / "model" / "model.safetensors").exists()  # best so far exported


def test_a_stop_request_on_a_pseudolabel_run_stops_the_round_in_training(cli, colour_data, tmp_path,
                                                                         stop_outer_run):
    assert cli("finetune", colour_data, *TINY, "--pretrained", "none", "--max-steps", "2", "--out", "start",
               "--quiet").exit_code == 0
    seen = stop_outer_run()
    summary = _summary(cli("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", "start",
                           "--threshold", "0.0", "--rounds", "2", *TINY[2:], "--max-steps", "4", "--out", "outer",
                           "--json", "--quiet"))
    # Round 0 only evaluates the start model; round 1 trains and is stopped at its first step; no round 2.
    assert summary["status"] == "stopped" and [r["round"] for r in summary["rounds"]] == [0, 1]
    assert seen == [1]
    assert not (tmp_path / "outer" / "rounds" / "round-2").exists()
    assert not (tmp_path / "outer" / STOP_REQUEST_FILE).exists()
