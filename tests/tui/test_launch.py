"""`run_with_dashboard`: the contract `--tui` relies on."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
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
    class Terminal:
        def __init__(self, stream):
            self.stream = stream

        def isatty(self):
            return True

        def __getattr__(self, name):
            return getattr(self.stream, name)

    class TerminalSys:
        stdin = types.SimpleNamespace(isatty=lambda: True)

        @property
        def stdout(self):
            return Terminal(sys.stdout)  # whatever pytest has put there now

        @property
        def stderr(self):
            return sys.stderr

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


def slow_training(run_dir, result=7, gate: threading.Event | None = None):
    """A job that writes its log after a while (once ``gate`` is set, when given: the screen has started)."""
    def job():
        if gate is not None:
            gate.wait(30)
        else:
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
        gate.set()
        await wait_until(pilot, lambda: "training ended" in panel_text(app, app.screen.query_one(RunLog)),
                         timeout=10, what="the end of the job")
        await wait_until(pilot, lambda: app.screen.run.status == "finished", what="the run_end event")
        seen["status"] = app.screen.run.status
        seen["log"] = panel_text(app, app.screen.query_one(RunLog))
        await pilot.press("q")

    gate = threading.Event()
    seen = fake_terminal(drive)
    assert launch.run_with_dashboard(tmp_path / "run", slow_training(tmp_path / "run", gate=gate)) == 7
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


def test_quitting_early_waits_for_the_job(tmp_path, fake_terminal, capsys, monkeypatch):
    async def drive(app, pilot, seen):
        await pilot.press("q")

    gate = threading.Event()  # the job goes on only once the dashboard has closed and the wait begun
    waiting = launch._wait_after_dashboard

    def wait_after_dashboard(run_dir, outcome):
        gate.set()
        waiting(run_dir, outcome)

    monkeypatch.setattr(launch, "_wait_after_dashboard", wait_after_dashboard)
    fake_terminal(drive)
    assert launch.run_with_dashboard(tmp_path / "run", slow_training(tmp_path / "run", result=3, gate=gate)) == 3
    assert "dashboard closed; training continues" in capsys.readouterr().err


def stopped_training(run_dir, say=None):
    """A job whose run stops after a checkpoint (the stop request). It starts once the dashboard is up
    (``job.started`` set by the driver); ``say`` is then printed to stderr."""
    started = threading.Event()

    def job():
        started.wait(30)
        if say:
            print(say, file=sys.stderr)
        logs.write(run_dir, logs.run_start(pid=os.getpid()) + logs.metric(10)
                   + logs.line("checkpoint", {"path": "checkpoints/interrupt", "kind": "interrupt"}, step=10)
                   + logs.line("run_end", {"status": "stopped", "wall_s": 1.0, "steps": 10, "error": None},
                               step=10))
        print('{"status": "stopped"}')
        return "summary"

    job.started = started
    return job


def test_after_the_dashboard_the_terminal_holds_the_run_folder_and_the_resume_line(tmp_path, fake_terminal,
                                                                                     capsys):
    run = tmp_path / "run"
    job = stopped_training(run)
    fake_terminal(start_then_quit(job))
    assert launch.run_with_dashboard(run, job) == "summary"
    err = capsys.readouterr().err
    assert err.splitlines()[-2:] == [f"tlcli: run folder {run} (stopped)",
                                     f"tlcli: stopped; continue with: tlcli finetune --resume {run}"]


def start_then_quit(job):
    """The driver: start the job once the screen is up, press q once the job has ended."""
    async def drive(app, pilot, seen):
        await wait_until(pilot, lambda: app.screen.run is not None)
        seen["app"] = app
        if hasattr(job, "started"):
            job.started.set()
        await wait_until(pilot, lambda: "training ended" in panel_text(app, app.screen.query_one(RunLog)),
                         timeout=10, what="the end of the job")
        await pilot.press("q")
    return drive


def test_a_finished_run_gets_its_folder_and_no_resume_line(tmp_path, fake_terminal, capsys):
    job = slow_training(tmp_path / "run")
    fake_terminal(start_then_quit(job))
    assert launch.run_with_dashboard(tmp_path / "run", job) == 7
    err = capsys.readouterr().err
    assert f"tlcli: run folder {tmp_path / 'run'} (finished)" in err and "--resume" not in err


def test_the_resume_line_is_not_repeated_when_the_job_said_it(tmp_path, fake_terminal, capsys, monkeypatch):
    monkeypatch.setattr(MonitorApp, "is_headless", property(lambda self: False))  # prints held, as on a terminal
    run = tmp_path / "run"
    job = stopped_training(run, say=f"stopped; Continue with: tlcli finetune --resume {run}")
    fake_terminal(start_then_quit(job))
    launch.run_with_dashboard(run, job)
    assert capsys.readouterr().err.count("--resume") == 1


def test_what_the_job_prints_under_the_dashboard_is_written_after_it(tmp_path, fake_terminal, capsys, monkeypatch):
    """On a real terminal Textual swallows prints while the app is up: the app holds them, and
    run_with_dashboard writes them (stdout and stderr, in order) once the app has closed."""
    monkeypatch.setattr(MonitorApp, "is_headless", property(lambda self: False))
    run = tmp_path / "run"
    job = stopped_training(run, say="a warning")
    seen = fake_terminal(start_then_quit(job))
    launch.run_with_dashboard(run, job)
    assert seen["app"].held_output == [("a warning", True), ("\n", True), ('{"status": "stopped"}', False),
                                       ("\n", False)]
    out, err = capsys.readouterr()
    assert out == '{"status": "stopped"}\n'
    assert err.splitlines()[-3:] == ["a warning", f"tlcli: run folder {run} (stopped)",
                                     f"tlcli: stopped; continue with: tlcli finetune --resume {run}"]


def test_no_run_folder_no_closing_lines(tmp_path):
    assert launch.closing_lines(tmp_path / "never-made") == []
