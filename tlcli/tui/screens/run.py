"""One run, live: header, then the panels of the run's event family (see `RunState.family`), then the log.

A training run shows loss and validation charts, numbers and layers; an agent run (one that writes
`message` events) its transcript; an index build (`index` events) its files, chunks, speed and ETA."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer

from tlcli.console.output import display_path, terminal_safe
from tlcli.tui.state import ENDED_STATUSES, RunState
from tlcli.tui.stop import request_stop
from tlcli.tui.watcher import EventLogWatcher, RunUpdated
from tlcli.tui.widgets.charts import LossChart, MetricChart
from tlcli.tui.widgets.index_panel import IndexPanel
from tlcli.tui.widgets.layers import LayerPanel
from tlcli.tui.widgets.run_header import RunHeader
from tlcli.tui.widgets.run_log import RunLog
from tlcli.tui.widgets.stats import StatsPanel
from tlcli.tui.widgets.transcript import TranscriptPanel


FAMILIES = ("training", "agents", "index")  # each a CSS class naming the panels shown


class RunScreen(Screen):
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause"),
        Binding("s", "request_stop", "Stop run"),
        Binding("m", "next_metric", "Metric"),
        Binding("escape", "back", "Runs", show=False),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    run: reactive[RunState | None] = reactive(None)
    paused: reactive[bool] = reactive(False)
    metric: reactive[str | None] = reactive(None)

    def __init__(self, run_dir: Path, can_go_back: bool = False) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.can_go_back = can_go_back
        self._held: RunState | None = None  # the newest state that arrived while paused
        self._watcher: EventLogWatcher | None = None

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header").data_bind(RunScreen.run, RunScreen.paused)
        with Horizontal(id="charts"):
            yield LossChart(id="loss-chart").data_bind(RunScreen.run)
            yield MetricChart(id="metric-chart").data_bind(RunScreen.run, RunScreen.metric)
        yield TranscriptPanel(id="transcript").data_bind(RunScreen.run)
        yield IndexPanel(id="index-build").data_bind(RunScreen.run)
        with Horizontal(id="panels"):
            yield StatsPanel(id="stats").data_bind(RunScreen.run)
            yield LayerPanel(id="layers").data_bind(RunScreen.run)
            yield RunLog(id="log").data_bind(RunScreen.run)
        yield Footer()

    def on_mount(self) -> None:
        self._watcher = EventLogWatcher(self.run_dir, self)
        self._watcher.start()

    def on_unmount(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    @on(RunUpdated)
    def take_update(self, message: RunUpdated) -> None:
        if self.paused:
            self._held = message.state
        else:
            self.run = message.state

    def watch_paused(self, paused: bool) -> None:
        if not paused and self._held is not None:
            self.run, self._held = self._held, None

    def watch_run(self, old: RunState | None, new: RunState | None) -> None:
        if new is not None:
            for family in FAMILIES:
                self.set_class(new.family == family, f"-{family}")
        ended = new is not None and new.status in ENDED_STATUSES
        if ended and (old is None or old.status not in ENDED_STATUSES) and getattr(self.app, "job_running", False):
            self.notify(f"run {new.status} — press q to quit", timeout=8)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def action_request_stop(self) -> None:
        run = self.run
        if run is not None and run.status in ENDED_STATUSES:
            self.notify(f"the run has already {run.status}", severity="warning")
            return
        if not self.run_dir.is_dir():
            self.notify(f"no run folder {display_path(self.run_dir)} yet", severity="warning", markup=False)
            return
        try:
            request_stop(self.run_dir)
        except OSError as error:  # a read-only or foreign run folder (synced from elsewhere)
            reason = (error.strerror or type(error).__name__).lower()
            self.query_one(RunLog).note(f"cannot ask the run to stop: {reason} writing the stop-request "
                                        f"file in {display_path(self.run_dir)}", "error")
            self.notify(f"cannot write the stop request ({reason})", severity="error", markup=False)
            return
        self.query_one(RunLog).note("stop requested: the run will checkpoint and end as stopped", "warning")
        self.notify("stop requested; the run checkpoints and stops")

    def action_next_metric(self) -> None:
        names = list(self.run.val) if self.run is not None else []
        if not names:
            return
        current = self.metric if self.metric in names else (self.run.val_metric or names[0])
        self.metric = names[(names.index(current) + 1) % len(names)]

    def action_back(self) -> None:
        if self.can_go_back:
            self.dismiss()

    def note_job_ended(self, error: str | None) -> None:
        """Called by `--tui` when the training thread returns."""
        log = self.query_one(RunLog)
        if error:
            log.note(f"training raised: {terminal_safe(error)}", "error")
        log.note("training ended — press q to quit")
        self.notify("training ended — press q to quit", timeout=8)
