"""Folding events into a run's state, without Textual."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support import tui_logs as logs
from tlcli.tui.state import MAX_SERIES_POINTS, RunState, Series, load_run
from tlcli.tui.tail import EventTail


def test_finished_run_folds_to_its_numbers(tmp_path):
    state = load_run(logs.write(tmp_path / "ft", logs.finished_run()))
    assert state.status == "finished"
    assert (state.step, state.total_steps, state.epoch) == (300, 300, 3)
    assert (state.monitor, state.best, state.best_step) == ("val_accuracy", 0.91, 300)
    assert [b.name for b in state.blocks if b.trainable] == ["layer3", "layer4", "fc"]
    assert state.val["val_accuracy"].values == [0.72, 0.86, 0.91]
    assert state.elapsed() == 754.0 and state.eta() is None
    texts = [line.text for line in state.logs]
    assert "unfroze layer4" in texts and "skipped 2 unreadable images" in texts
    assert texts[-1] == "run finished: best val_accuracy 0.91 in 12m34s"


def test_run_without_end_whose_writer_is_gone_is_interrupted_at_its_last_step(tmp_path):
    state = load_run(logs.write(tmp_path / "crashed", logs.crashed_run()))
    assert state.status == "interrupted"
    assert state.step == 120
    assert state.elapsed() == 60.0  # start to last event


def test_live_writer_on_this_host_is_running():
    state = RunState(Path("x"))
    state.apply(json.loads(logs.run_start(pid=os.getpid())))
    assert state.judge_status() == "running"


def test_another_host_is_judged_by_staleness():
    state = RunState(Path("x"))
    state.apply(json.loads(logs.run_start(host="gpu-box-7")))
    assert state.judge_status(now=logs.START + 30, this_host="laptop") == "running?"
    assert state.judge_status(now=logs.START + 3600, this_host="laptop") == "interrupted?"


def test_torn_last_line_waits_for_its_newline(tmp_path):
    path = logs.write(tmp_path / "r", logs.run_start() + logs.metric(10)) / "events.jsonl"
    torn = logs.metric(20)
    with open(path, "a") as handle:
        handle.write(torn[:25])
    tail = EventTail(path)
    assert [e["kind"] for e in tail.read_new().events] == ["run_start", "metric"]
    with open(path, "a") as handle:
        handle.write(torn[25:] + "not json\n" + "[1, 2]\n")
    assert [e["step"] for e in tail.read_new().events] == [20]


def test_replaced_log_is_read_again(tmp_path):
    run = logs.write(tmp_path / "r", logs.run_start() + logs.metric(10) + logs.metric(20))
    tail = EventTail(run / "events.jsonl")
    assert len(tail.read_new().events) == 3
    logs.write(run, logs.run_start())
    found = tail.read_new()
    assert found.restarted and len(found.events) == 1


def test_unknown_kinds_are_ignored_unless_they_carry_text():
    state = RunState(Path("x"))
    state.apply({"kind": "gradient_histogram", "step": 3, "data": {"bins": [1, 2]}})
    state.apply({"kind": "review", "step": 4, "data": {"role": "critic", "content": "check step 2"}})
    assert [(line.level, line.text) for line in state.logs] == [("review", "critic: check step 2")]
    # An agent's `message` goes to the transcript (its own panel), not the log.
    state.apply({"kind": "message", "step": 5, "data": {"agent": "critic", "role": "assistant", "content": "ok"}})
    assert len(state.logs) == 1 and [e.content for e in state.transcript] == ["ok"]


def test_resumed_run_forgets_points_past_its_checkpoint():
    state = RunState(Path("x"))
    for step in (10, 20, 30):
        state.apply(json.loads(logs.metric(step)))
    resumed = json.loads(logs.run_start())
    resumed["data"]["resumed_from"] = 20
    state.apply(resumed)
    state.apply(json.loads(logs.metric(25)))
    assert state.loss.steps == [10, 20, 25] and state.step == 25


def test_long_series_are_thinned_not_unbounded():
    series = Series()
    for step in range(10 * MAX_SERIES_POINTS):
        series.add(step, 1.0 / (step + 1))
    assert len(series) <= MAX_SERIES_POINTS
    assert series.steps[0] == 0 and series.steps[-1] > 9 * MAX_SERIES_POINTS
