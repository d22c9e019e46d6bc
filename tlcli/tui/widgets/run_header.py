"""The two header lines: what the run is, its status, time, progress."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tlcli.console.output import display_path
from tlcli.tui.format import duration
from tlcli.tui.state import RunState

STATUS_STYLES = {
    "running": "bold green",
    "running?": "bold yellow",
    "finished": "bold cyan",
    "stopped": "bold yellow",
    "interrupted": "bold red",
    "interrupted?": "bold red",
    "failed": "bold white on red",
    "waiting": "dim",
}
BAR_WIDTH = 24
INDEX_BAR_WIDTH = 12  # beside the file and chunk counts


class RunHeader(Widget):
    """Run, model, plugin, device; status, elapsed, ETA; step and epoch progress."""

    run: reactive[RunState | None] = reactive(None)
    paused: reactive[bool] = reactive(False)

    def on_mount(self) -> None:
        # Elapsed and ETA move on between events.
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.run is not None and self.run.is_live:
            self.refresh()

    def render(self) -> RenderableType:
        run = self.run
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        if run is None:
            grid.add_row(Text("waiting for the event log…", style="dim"), "")
            return grid
        grid.add_row(self._identity(run), self._timing(run))
        grid.add_row(self._progress(run), Text("PAUSED", style="bold black on yellow") if self.paused else "")
        return grid

    def _identity(self, run: RunState) -> Text:
        text = Text(run.name or display_path(run.run_dir.name), style="bold")
        what = [x for x in (run.model, run.plugin or run.command, " ".join(filter(None, (run.device, run.precision)))) if x]
        if what:
            text.append("  " + " · ".join(what), style="dim" if run.status == "waiting" else "")
        return text

    def _timing(self, run: RunState) -> Text:
        text = Text("● ", style=STATUS_STYLES.get(run.status, "bold"))
        text.append(run.status, style=STATUS_STYLES.get(run.status, "bold"))
        if run.status == "waiting":
            return text
        text.append(f"  {duration(run.elapsed())}")
        eta = run.eta()
        if eta is not None:
            text.append(f"  ETA {duration(eta)}", style="dim")
        return text

    def _progress(self, run: RunState) -> Text:
        if run.status == "waiting":
            return Text(f"waiting for {display_path(run.run_dir / 'events.jsonl')}", style="dim")
        if run.family == "agents":  # an agents run counts turns and messages, not steps and epochs
            return Text(f"turn {run.step}  {run.transcript_count} messages  {len(run.agents)} agents")
        if run.family == "index":  # an index build counts files and chunks
            return self._index_progress(run)
        text = Text(f"step {run.step}")
        progress = run.progress
        if progress is not None:
            text.append(f"/{run.total_steps} ")
            done = int(round(progress * BAR_WIDTH))
            text.append("━" * done, style="green" if run.is_live else "cyan")
            text.append("━" * (BAR_WIDTH - done), style="grey35")
            text.append(f" {progress:4.0%}")
        epochs = f"/{run.epochs:g}" if run.epochs else ""
        text.append(f"  epoch {run.epoch:.2f}{epochs}")
        return text

    def _index_progress(self, run: RunState) -> Text:
        build = run.index
        text = Text()
        if build.files is not None:
            text.append(f"files {build.files_done or 0:,}/{build.files:,}  ")
        total = f"/{build.chunks:,}" if build.chunks is not None else ""
        text.append(f"chunks {build.chunks_done or 0:,}{total}")
        progress = run.progress
        if progress is not None:
            done = int(round(progress * INDEX_BAR_WIDTH))
            text.append(" ")
            text.append("━" * done, style="green" if run.is_live else "cyan")
            text.append("━" * (INDEX_BAR_WIDTH - done), style="grey35")
            text.append(f" {progress:4.0%}")
        return text
