"""Snapshots of the main screens (pytest-textual-snapshot). After a deliberate change to how they look:
`.venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the SVGs."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import tui_logs as logs
from support.tui import screen_lines
from tlcli.tui.app import build_monitor_app
from tlcli.tui.screens.compare import CompareScreen


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """./runs with a finished and a crashed run; relative, so no tmp path reaches the screen."""
    monkeypatch.chdir(tmp_path)
    logs.write(Path("runs/ft"), logs.finished_run())
    logs.write(Path("runs/crashed"), logs.crashed_run())
    return Path("runs")


async def until(pilot, condition) -> None:
    for _ in range(200):
        if condition():
            break
        await pilot.pause(0.05)
    await pilot.pause()


def run_loaded(pilot):
    screen = pilot.app.screen
    return until(pilot, lambda: screen.run is not None and screen.run.status == "finished")


def test_run_screen_80x24(snap_compare, runs):
    assert snap_compare(build_monitor_app(runs / "ft"), terminal_size=(80, 24), run_before=run_loaded)


def test_run_screen_wide(snap_compare, runs):
    assert snap_compare(build_monitor_app(runs / "ft"), terminal_size=(140, 40), run_before=run_loaded)


def test_runs_table(snap_compare, runs):
    async def rows_loaded(pilot):
        await until(pilot, lambda: pilot.app.screen.query_one("DataTable").row_count == 2)
        # Column widths follow the rows on the table's next idle pass: wait for the redrawn rows.
        await until(pilot, lambda: "120/300 40%" in "\n".join(screen_lines(pilot.app)))

    assert snap_compare(build_monitor_app(runs), terminal_size=(80, 24), run_before=rows_loaded)


def test_compare_two_runs(snap_compare, runs):
    async def compare(pilot):
        await until(pilot, lambda: pilot.app.screen.query_one("DataTable").row_count == 2)
        await pilot.press("c", "down", "c")
        await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                    and pilot.app.screen._drawn_once)

    assert snap_compare(build_monitor_app(runs), terminal_size=(80, 24), run_before=compare)
