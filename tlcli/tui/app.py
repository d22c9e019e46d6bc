"""The dashboard app: one run's screen, or a table of the runs in a folder.

Build it with `build_monitor_app(path)`; `tlcli monitor` and `--tui` (see `launch.py`) both do.
"""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from tlcli.tui.runs import find_runs, is_run_dir
from tlcli.tui.screens.help import HelpScreen
from tlcli.tui.screens.run import RunScreen
from tlcli.tui.screens.runs import RunsScreen

JOB_POLL_S = 0.25


class MonitorApp(App[None]):
    CSS_PATH = "monitor.tcss"
    TITLE = "tlcli monitor"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, target: Path, show_runs: bool) -> None:
        super().__init__()
        self.target = Path(target)
        self.show_runs = show_runs
        self.job_running = False  # true under `--tui` while the training thread runs
        self._job = None
        # Under `--tui`: what the job wrote to stdout / stderr while the app was up, as (text, to_stderr),
        # written to the terminal once the app has closed (see `launch.run_with_dashboard`). Headless (in
        # tests) Textual captures nothing: prints reach the streams at once.
        self.held_output: list[tuple[str, bool]] = []
        self.output_passed_through = False

    def follow_job(self, outcome) -> None:
        """Under `--tui`: watch a `launch.JobOutcome` and say on screen when the training thread ends."""
        self._job = outcome
        self.job_running = True
        self.begin_capture_print(self)  # before the app starts: the job may print at once

    def on_mount(self) -> None:
        if self._job is not None:
            self.set_interval(JOB_POLL_S, self._check_job)
            self.output_passed_through = self.is_headless

    def on_print(self, event: events.Print) -> None:
        self.held_output.append((event.text, event.stderr))

    def _check_job(self) -> None:
        if self.job_running and self._job.done.is_set():
            self.job_running = False
            self.job_ended(self._job.error_line)

    def get_default_screen(self) -> Screen:
        if self.show_runs:
            return RunsScreen(self.target)
        return RunScreen(self.target)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def job_ended(self, error: str | None) -> None:
        """The `--tui` training thread returned (error: its exception, in one line)."""
        for screen in self.screen_stack:
            if isinstance(screen, RunScreen):
                screen.note_job_ended(error)
                break


def shows_runs_table(path: Path) -> bool:
    """A run folder (or a path where one will appear) gets the run screen; a folder of runs the table."""
    path = Path(path)
    if is_run_dir(path):
        return False
    return bool(find_runs(path))


def build_monitor_app(path: Path, show_runs: bool | None = None) -> MonitorApp:
    path = Path(path)
    return MonitorApp(path, shows_runs_table(path) if show_runs is None else show_runs)
