"""Numbers of the latest metric line: loss, best, throughput, data wait, memory, learning rates."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tlcli.tui.format import megabytes, number
from tlcli.tui.state import RunState


class StatsPanel(Widget):
    run: reactive[RunState | None] = reactive(None)

    def on_mount(self) -> None:
        self.border_title = "now"

    def render(self) -> Table:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(style="dim", no_wrap=True, width=5)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        run = self.run
        if run is None:
            return grid
        grid.add_row("loss", number(run.loss.last))
        if run.monitor or run.val:
            name = run.monitor or run.val_metric or "-"
            best_at = f" @{run.best_step}" if run.best_step is not None else ""
            grid.add_row("best", f"{number(run.best)}{best_at} {name}")
        if run.samples_per_s is not None:
            grid.add_row("speed", f"{run.samples_per_s:,.0f} samples/s")
        if run.data_wait is not None:
            style = "yellow" if run.data_wait > 0.3 else ""
            grid.add_row("wait", Text(f"{run.data_wait:.0%}", style=style))
        if run.memory:
            parts = [f"RAM {megabytes(run.memory.get('rss_mb'))}"]
            if run.memory.get("gpu_mb") is not None:
                parts.append(f"GPU {megabytes(run.memory.get('gpu_mb'))}")
            grid.add_row("mem", " · ".join(parts))
        for index, (group, lr) in enumerate(run.lr.items()):
            grid.add_row("lr" if index == 0 else "", f"{group} {lr:.1e}")
        return grid
