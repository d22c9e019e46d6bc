"""`run_with_dashboard`: the contract `--tui` relies on."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import types

import pytest

from support import tui_logs as logs
from support.tui import panel_text, wait_until
from tlcli.tui import launch
from tlcli.tui.app import MonitorApp
from tlcli.tui.widgets.run_log import RunLog


def test_without_a_terminal_it_just_runs_the_job(tmp_path, capsys):
    assert launch.run_with_dashboard(tmp_path / "run", lambda: 42) == 42
    assert capsys.readouterr().err.strip() == "tlcli: --tui ignored: not a terminal"


def test_without_a_terminal_the_jobs_error_propagates(tmp_path):
    def job():
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        launch.run_with_dashboard(tmp_path / "run", job)


@pytest.fixture
def fake_terminal(monkeypatch):
    """A terminal for `run_with_dashboard`, and an app that runs headless; `drive(pilot)` plays the user."""
    class TerminalSys:
        stdin = stdout = types.SimpleNamespace(isatty=lambda: True)

        @property
        def stderr(self):
            return sys.stderr  # whatever pytest has put there now

    monkeypatch.setattr(launch, "sys", TerminalSys())
    seen = {}

    def use(drive):
        def run_headless(self):
            async def play():
                async with self.run_test(size=(80, 24)) as pilot:
                    await drive(self, pilot, seen)
            asyncio.run(play())

        monkeypatch.setattr(MonitorApp, "run", run_headless)
        return seen

    return use


def slow_training(run_dir, result=7):
    def job():
        time.sleep(0.3)  # the screen starts before the log exists
        logs.write(run_dir, logs.run_start(pid=os.getpid()) + logs.metric(10))
        time.sleep(0.3)
        with open(run_dir / "events.jsonl", "a") as handle:
            handle.write(logs.line("run_end", {"status": "finished", "best": None, "monitor": None,
                                               "wall_s": 0.6, "steps": 10, "error": None}, step=10))
        return result
    return job


def test_the_dashboard_follows_the_job_and_keeps_the_summary(tmp_path, fake_terminal):
    async def drive(app, pilot, seen):
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.status == "waiting")
        seen["waited"] = True
        await wait_until(pilot, lambda: "training ended" in panel_text(app, app.screen.query_one(RunLog)),
                         timeout=10, what="the end of the job")
        seen["status"] = app.screen.run.status
        seen["log"] = panel_text(app, app.screen.query_one(RunLog))
        await pilot.press("q")

    seen = fake_terminal(drive)
    assert launch.run_with_dashboard(tmp_path / "run", slow_training(tmp_path / "run")) == 7
    assert seen["waited"] and seen["status"] == "finished"
    assert "run finished" in seen["log"]


def test_the_jobs_exception_is_shown_then_reraised(tmp_path, fake_terminal):
    def job():
        raise RuntimeError("CUDA out of memory")

    async def drive(app, pilot, seen):
        await wait_until(pilot, lambda: "training ended" in panel_text(app, app.screen.query_one(RunLog)))
        seen["log"] = panel_text(app, app.screen.query_one(RunLog))
        await pilot.press("q")

    seen = fake_terminal(drive)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        launch.run_with_dashboard(tmp_path / "run", job)
    assert "training raised: RuntimeError: CUDA out of memory" in seen["log"]


def test_quitting_early_waits_for_the_job(tmp_path, fake_terminal, capsys):
    async def drive(app, pilot, seen):
        await pilot.press("q")

    fake_terminal(drive)
    assert launch.run_with_dashboard(tmp_path / "run", slow_training(tmp_path / "run", result=3)) == 3
    assert "dashboard closed; training continues" in capsys.readouterr().err
