"""An index build's progress (a `tlcli rag index` run): stage, files, chunks, chunks/s, ETA."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tlcli.tui.format import duration
from tlcli.tui.index_build import IndexBuild
from tlcli.tui.state import RunState

BAR_WIDTH = 30


class IndexPanel(Widget):
    run: reactive[RunState | None] = reactive(None)

    def on_mount(self) -> None:
        self.border_title = "index build"
        self.set_interval(1.0, self._tick)  # the ETA moves on between events

    def _tick(self) -> None:
        if self.run is not None and self.run.is_live and self.run.index is not None:
            self.refresh()

    def render(self) -> Table:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(style="dim", no_wrap=True, width=7)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        run = self.run
        build = run.index if run is not None else None
        if build is None:
            grid.add_row("", Text("no index events yet", style="dim"))
            return grid
        live = run.is_live
        if build.folder:
            grid.add_row("index", build.folder)
        if build.stage:
            grid.add_row("stage", build.stage)
        grid.add_row("files", _progress(build.files_done, build.files, build.files_fraction, live))
        if build.changed is not None or build.removed is not None:
            grid.add_row("", Text(f"{build.changed or 0:,} new or changed, {build.removed or 0:,} removed",
                                  style="dim"))
        grid.add_row("chunks", _progress(build.chunks_done, build.chunks, build.chunks_fraction, live))
        speed = f"{build.chunks_per_s:,.1f} chunks/s" if build.chunks_per_s is not None else "-"
        grid.add_row("speed", speed)
        grid.add_row("ETA", _eta(run, build))
        return grid


def _progress(done: int | None, total: int | None, fraction: float | None, live: bool) -> Text:
    text = Text(f"{_n(done)} / {_n(total)}")
    if fraction is not None:
        filled = int(round(fraction * BAR_WIDTH))
        text.append("  ")
        text.append("━" * filled, style="green" if live else "cyan")
        text.append("━" * (BAR_WIDTH - filled), style="grey35")
        text.append(f" {fraction:4.0%}")
    return text


def _eta(run: RunState, build: IndexBuild) -> str:
    if run.status == "finished":
        return "done"
    if not run.is_live:
        return "-"
    return duration(run.eta())


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
