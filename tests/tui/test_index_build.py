"""An index build (`tlcli rag index`) on the dashboard: its `index` events fold into an `IndexBuild`, and the run
screen shows files, chunks, chunks/s and ETA in place of the (empty) training charts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from support import tui_logs as logs
from support.tui import panel_text, wait_until, widget_text
from tlcli.tui.app import build_monitor_app
from tlcli.tui.state import RunState, load_run
from tlcli.tui.widgets.index_panel import IndexPanel
from tlcli.tui.widgets.run_header import RunHeader


def test_index_events_fold_into_the_index_family(tmp_path):
    state = load_run(logs.write(tmp_path / "index", logs.index_run(ended=False)))
    assert state.family == "index" and state.status == "interrupted"
    build = state.index
    assert (build.files_done, build.files, build.chunks_done, build.chunks) == (40, 120, 800, 2400)
    assert build.chunks_per_s == 80.0 and build.eta_s == 20.0 and build.folder == ".tlcli-index"
    assert state.progress == pytest.approx(1 / 3)
    assert not state.loss and not state.val  # no training numbers invented


def test_the_older_index_events_of_rag_index_are_read_too(tmp_path):
    """Embedding events where `chunks` counts what is done and `chunks_total` the total; a `chunked` stage
    whose `chunks` is the total to embed; a `hashed` stage with changed and removed files."""
    state = load_run(logs.write(tmp_path / "index", logs.legacy_index_run()))
    build = state.index
    assert state.family == "index" and build.stage == "embedding"
    assert (build.files_done, build.files, build.chunks_done, build.chunks) == (4, 10, 120, 300)
    assert (build.changed, build.removed) == (10, 1)
    assert build.eta() == pytest.approx((300 - 120) / 60.0)  # no estimate written: chunks left at the rate


def test_a_chunked_stage_alone_means_nothing_embedded_yet():
    state = RunState(Path("x"))
    state.apply(json.loads(logs.index_start()))
    state.apply(json.loads(logs.line("index", {"stage": "chunked", "files": 3, "files_done": 3, "chunks": 9})))
    assert (state.index.chunks_done, state.index.chunks, state.progress) == (0, 9, 0.0)


def test_the_writers_eta_counts_down_between_events():
    state = RunState(Path("x"))
    state.apply(json.loads(logs.index_start(pid=os.getpid())))
    state.apply(json.loads(logs.index_progress(40, 800, time=logs.START + 10)))
    state.judge_status()
    assert state.eta(now=logs.START + 10) == 20.0 and state.eta(now=logs.START + 15) == 15.0
    assert state.eta(now=logs.START + 60) == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5, "12", True, None, [1], 10**30])
def test_odd_numbers_in_index_events_are_ignored(bad):
    state = RunState(Path("x"))
    state.apply(json.loads(logs.index_progress(40, 800)))
    state.apply({"kind": "index", "time": logs.START, "data": {
        "files_done": bad, "files": bad, "chunks_done": bad, "chunks": bad, "chunks_per_s": bad, "eta_s": bad,
        "stage": "\x1b]52;c;aGk=\x07embedding"}})
    build = state.index
    assert (build.files_done, build.files, build.chunks_done, build.chunks) == (40, 120, 800, 2400)
    assert build.chunks_per_s == 80.0 and build.eta_s is None and "\x1b" not in build.stage
    assert state.unreadable_events == 0


def test_runs_that_write_other_kinds_keep_their_family(tmp_path):
    assert load_run(logs.write(tmp_path / "ft", logs.finished_run())).family == "training"
    assert load_run(logs.write(tmp_path / "agents", logs.agent_run())).family == "agents"


# ---- the screen -----------------------------------------------------------------------------------------------

pilot_test = pytest.mark.anyio


@pilot_test
async def test_a_live_index_build_shows_files_chunks_speed_and_eta(tmp_path):
    now = time.time()
    text = logs.index_start(pid=os.getpid(), time=now - 11) + logs.index_progress(40, 800, time=now - 1)
    app = build_monitor_app(logs.write(tmp_path / "index", text))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.status == "running")
        panel = app.screen.query_one(IndexPanel)
        assert panel.display and not app.screen.query_one("#charts").display
        shown = panel_text(app, panel)
        assert "files 40 / 120" in shown and "33%" in shown and "chunks 800 / 2,400" in shown
        assert "80.0 chunks/s" in shown and ".tlcli-index" in shown
        assert "ETA 19s" in shown or "ETA 18s" in shown  # 20 s estimated a second ago
        header = widget_text(app, app.screen.query_one(RunHeader))
        assert "chunks 800/2,400" in header and "files 40/120" in header and "ETA" in header


@pilot_test
async def test_the_index_panel_follows_new_events_to_the_end(tmp_path):
    run = logs.write(tmp_path / "index", logs.index_start(pid=os.getpid()) + logs.index_progress(0, 0))
    app = build_monitor_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.index is not None)
        with open(run / "events.jsonl", "a") as log:
            log.write(logs.index_progress(120, 2400) + logs.line("run_end", {"status": "finished"}, run="index"))
        await wait_until(pilot, lambda: app.screen.run.status == "finished", what="the run's end")
        shown = panel_text(app, app.screen.query_one(IndexPanel))
        assert "files 120 / 120" in shown and "chunks 2,400 / 2,400" in shown and "100%" in shown
        assert "ETA done" in shown


@pilot_test
async def test_a_training_run_has_no_index_panel(tmp_path):
    app = build_monitor_app(logs.write(tmp_path / "ft", logs.finished_run()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.status == "finished")
        assert not app.screen.query_one(IndexPanel).display and app.screen.query_one("#charts").display


@pilot_test
async def test_the_runs_table_shows_an_index_builds_chunks(tmp_path):
    from support.tui import screen_lines

    logs.write(tmp_path / "runs" / "index", logs.index_run(ended=False))
    app = build_monitor_app(tmp_path / "runs")
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_until(pilot, lambda: "800/2400 chunks" in "\n".join(screen_lines(app)), what="the index row")


def test_index_screen_snapshot(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logs.write(Path("runs/index"), logs.legacy_index_run() + logs.line(
        "run_end", {"status": "stopped", "error": None}, time=logs.START + 5, run="index"))

    async def loaded(pilot):
        screen = pilot.app.screen
        for _ in range(200):
            if screen.run is not None and screen.run.status == "stopped":
                break
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(build_monitor_app(Path("runs/index")), terminal_size=(80, 24), run_before=loaded)


# ---- a real `rag index` run -----------------------------------------------------------------------------------

@pilot_test
async def test_tlcli_monitor_on_a_rag_index_run_shows_the_index_panel(cli, tmp_path):
    for i in range(3):
        (tmp_path / "docs").mkdir(exist_ok=True)
        (tmp_path / "docs" / f"note{i}.md").write_text(f"# Note {i}\n\nThe tomatoes need water number {i}.\n")
    done = cli("rag", "index", "docs", "--out", "run", "--json")
    assert done.exit_code == 0, done.stderr
    state = load_run(tmp_path / "run")
    assert state.family == "index" and state.status == "finished"
    assert state.index.chunks and state.index.chunks_done == state.index.chunks and state.index.files == 3
    app = build_monitor_app(tmp_path / "run")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.status == "finished")
        shown = panel_text(app, app.screen.query_one(IndexPanel))
        assert "files 3 / 3" in shown and "chunks/s" in shown and "ETA done" in shown
        assert not app.screen.query_one("#charts").display
