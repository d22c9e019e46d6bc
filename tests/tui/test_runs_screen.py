"""The table of runs in a folder, opening a run, and overlaying two runs."""

from __future__ import annotations

import os

import pytest
from textual.widgets import DataTable

from support import tui_logs as logs
from support.tui import screen_lines, wait_until
from tlcli.tui.app import build_monitor_app
from tlcli.tui.screens.compare import CompareScreen
from tlcli.tui.screens.run import RunScreen

pytestmark = pytest.mark.anyio


def two_runs(root):
    logs.write(root / "ft", logs.finished_run())
    logs.write(root / "crashed", logs.crashed_run())
    (root / "not-a-run").mkdir()
    return root


async def test_table_lists_runs_with_status_progress_and_best(tmp_path):
    app = build_monitor_app(two_runs(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        # Column widths follow the rows on the table's next idle pass: wait for the redrawn screen.
        await wait_until(pilot, lambda: "120/300 40%" in "\n".join(screen_lines(app)), what="rows redrawn")
        text = "\n".join(screen_lines(app))
        assert "finished" in text and "300/300 100%" in text and "val_accuracy 0.91" in text
        assert "interrupted" in text and "120/300 40%" in text
        assert "not-a-run" not in text


async def test_enter_opens_a_run_and_escape_returns(tmp_path):
    app = build_monitor_app(two_runs(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run is not None
                         and app.screen.run.status != "waiting")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RunScreen)


async def test_c_on_two_runs_overlays_their_curves(tmp_path):
    app = build_monitor_app(two_runs(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
        await pilot.press("c")
        await pilot.pause()
        assert any("press c on another run" in line for line in screen_lines(app))
        await pilot.press("down", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen)
                         and any("12m34s" in line for line in screen_lines(app)))
        text = "\n".join(screen_lines(app))
        assert "crashed" in text and "ft" in text and "val_accuracy" in text


async def test_empty_folder_says_so(tmp_path):
    (tmp_path / "runs").mkdir()
    app = build_monitor_app(tmp_path / "runs", show_runs=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert any("no runs in" in line for line in screen_lines(app))


def test_a_run_folder_gets_the_run_screen_and_a_folder_of_runs_the_table(tmp_path):
    root = two_runs(tmp_path / "runs")
    assert build_monitor_app(root).show_runs
    assert not build_monitor_app(root / "ft").show_runs
    assert not build_monitor_app(tmp_path / "not-yet").show_runs
    assert os.path.isdir(root)
