"""The dashboard's screens against hostile run folders: markup and escapes in names, absurd numbers, a run
folder that is not there. The app must keep drawing and keep following the log."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable

from support import tui_logs as logs
from support.tui import panel_text, screen_lines, wait_until

from tlcli.tui.app import build_monitor_app
from tlcli.tui.screens.compare import CompareScreen
from tlcli.tui.widgets.run_log import RunLog


@pytest.fixture
def anyio_backend():
    return "asyncio"


def hostile_start(**data) -> str:
    line = logs.run_start(pid=os.getpid())
    return line.replace('"plugin": "finetune"', f'"plugin": {__import__("json").dumps(data.get("plugin", "finetune"))}')


@pytest.mark.anyio
async def test_markup_in_names_is_shown_as_text_in_the_runs_table_and_compare(tmp_path):
    root = tmp_path / "runs"
    logs.write(root / "[red]a", logs.finished_run(run="[red]a"))  # a folder name cannot hold "/"
    logs.write(root / "b", hostile_start(plugin="[/bold]") + logs.metric(10))
    app = build_monitor_app(root)
    async with app.run_test(size=(100, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: "[/bold]" in "\n".join(screen_lines(app)), what="the plugin's name")
        assert table.row_count == 2 and any("[red]a" in line for line in screen_lines(app))
        await pilot.press("c", "down", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen)
                         and any("■ [red]a" in line for line in screen_lines(app)), what="the compare table")


@pytest.mark.anyio
async def test_the_run_screen_survives_absurd_numbers_and_keeps_following(tmp_path):
    run = tmp_path / "r"
    odd = (logs.line("metric", {"loss": 1e308, "lr": {"x": 1e308}, "memory": {"rss_mb": 10**400}}, step=20)
           + logs.line("metric", {"loss": -1e308, "samples_per_s": float("inf")}, step=30)
           + logs.line("eval", {"metrics": {"acc\x1b[2J": float("nan"), "f1": 1e-320}, "best": float("inf")},
                       step=30)
           + '{"kind": "metric", "step": Infinity, "epoch": NaN, "time": -1e30, "data": {"loss": "x"}}\n'
           + logs.line("log", {"level": "warning", "message": "osc \x1b]52;c;ZXZpbA==\x07 done\nforged line"})
           + logs.line("run_start", {"pid": 1e30, "total_steps": float("inf"), "epochs": -1, "blocks": [7, {}]}))
    logs.write(run, logs.run_start(pid=os.getpid()) + logs.metric(10) + odd)
    app = build_monitor_app(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and "forged" in panel_text(
            app, app.screen.query_one(RunLog)), what="the hostile lines")
        log_text = panel_text(app, app.screen.query_one(RunLog))
        assert "osc \\x1b]52;c;ZXZpbA==\\x07 done\\nforged line" in log_text
        with open(run / "events.jsonl", "a") as handle:
            handle.write(logs.metric(77))
        await wait_until(pilot, lambda: app.screen.run.step == 77, what="the reader thread to go on")
        assert any("step 77" in line for line in screen_lines(app))
        assert not any("cannot be drawn" in line for line in screen_lines(app))  # clamped, still a curve
        assert app.screen.run.unreadable_events == 0


def test_a_mistyped_run_folder_is_named_with_the_closest_one(cli, tmp_path):
    logs.write(tmp_path / "runs" / "finetune-20261123-101500", logs.finished_run())
    result = cli("monitor", "runs/finetune-20261123-10150")
    assert result.exit_code == 2
    assert "no run folder runs/finetune-20261123-10150 (did you mean runs/finetune-20261123-101500?)" in result.stderr
    assert "--wait" in result.stderr and "Traceback" not in result.stderr
    result = cli("monitor", "nowhere/x")
    assert result.exit_code == 2 and "no folder nowhere" in result.stderr


def test_with_wait_a_missing_folder_is_watched(cli, tmp_path, monkeypatch):
    import types

    import tlcli.cli.monitor as monitor_cmd
    from tlcli.tui import app as tui_app

    tty = types.SimpleNamespace(isatty=lambda: True)
    monkeypatch.setattr(monitor_cmd, "sys", types.SimpleNamespace(stdin=tty, stdout=tty, stderr=sys.stderr))
    shown = []
    monkeypatch.setattr(tui_app.MonitorApp, "run", lambda self: shown.append((self.target, self.show_runs)))
    result = cli("monitor", "--wait", "runs/later")
    assert result.exit_code == 0 and shown == [(Path("runs/later"), False)]


@pytest.mark.anyio
async def test_stop_on_a_read_only_run_folder_says_why(tmp_path, monkeypatch):
    from tlcli.runs import paths

    run = logs.write(tmp_path / "r", logs.run_start(pid=os.getpid()) + logs.metric(10))

    def read_only(path, text):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(paths, "atomic_write_text", read_only)
    monkeypatch.setattr("tlcli.tui.stop.atomic_write_text", read_only)
    app = build_monitor_app(run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.step == 10)
        await pilot.press("s")
        await wait_until(pilot, lambda: "cannot ask the run to stop" in panel_text(app, app.screen.query_one(RunLog)),
                         what="the refusal in the log")
        assert "read-only file system" in panel_text(app, app.screen.query_one(RunLog))
