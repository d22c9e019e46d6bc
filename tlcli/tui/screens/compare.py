"""Two runs' curves overlaid: training loss and the first run's validation metric."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from tlcli.console.output import display_path
from tlcli.tui.format import duration, number
from tlcli.tui.runs import RunReader
from tlcli.tui.state import RunState
from tlcli.tui.widgets.charts import Curve, CurveChart

REFRESH_S = 2.0


class PairRead(Message):
    def __init__(self, runs: list[RunState]) -> None:
        super().__init__()
        self.runs = runs

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PairRead)


class CompareScreen(Screen):
    BINDINGS = [Binding("escape", "dismiss", "Runs")]

    def __init__(self, first: Path, second: Path) -> None:
        super().__init__()
        self.run_dirs = (Path(first), Path(second))
        self._reader = RunReader()
        self._drawn_once = False

    def compose(self) -> ComposeResult:
        yield Static(id="compare-table")
        with Horizontal(id="compare-charts"):
            yield CurveChart("train loss", id="compare-loss")
            yield CurveChart("validation", id="compare-metric")
        yield Footer()

    def on_mount(self) -> None:
        self._read()
        self.set_interval(REFRESH_S, self._read)

    @work(thread=True, exclusive=True, group="compare")
    def _read(self) -> None:
        self.post_message(PairRead([self._reader.read(d) for d in self.run_dirs]))

    @on(PairRead)
    def show_pair(self, message: PairRead) -> None:
        runs = message.runs
        self.query_one("#compare-loss", CurveChart).show(
            "train loss", [Curve.of(display_path(r.run_dir.name), r.loss) for r in runs]
        )
        metric = next((r.val_metric for r in runs if r.val_metric), None)
        curves = [Curve.of(display_path(r.run_dir.name), r.val[metric]) for r in runs if metric in r.val]
        self.query_one("#compare-metric", CurveChart).show(metric or "validation (no eval yet)", curves)
        table = Table(expand=True, box=None, padding=(0, 1))
        for column in ("run", "status", "steps", "best", "time"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for color, run in zip(("cyan", "dark_orange"), runs):
            best = f"{run.monitor or ''} {number(run.best)}".strip() if run.best is not None else "-"
            # Markup strings as before, with the names escaped: a run called "[red]x" shows as itself.
            table.add_row(f"[{color}]■[/] {escape(display_path(run.run_dir.name))}", run.status, str(run.step),
                          escape(best), duration(run.elapsed()))
        self.query_one("#compare-table", Static).update(table)
        self._drawn_once = True
