"""Every block of the model, trainable or frozen, updated as gradual unfreezing happens."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from tlcli.tui.format import count
from tlcli.tui.state import RunState


class LayerPanel(VerticalScroll):
    run: reactive[RunState | None] = reactive(None)

    def compose(self) -> ComposeResult:
        yield Static(id="layer-list")

    def on_mount(self) -> None:
        self.border_title = "layers"

    def watch_run(self, run: RunState | None) -> None:
        if run is None:
            return
        blocks = run.blocks
        trainable = sum(1 for b in blocks if b.trainable)
        self.border_subtitle = f"{trainable}/{len(blocks)} trainable" if blocks else ""
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, overflow="ellipsis")
        table.add_column(justify="right", no_wrap=True)
        for block in blocks:
            if block.trainable:
                table.add_row(Text("■", style="green"), Text(block.name), Text(count(block.params)))
            else:
                table.add_row(Text("□", style="dim"), Text(block.name, style="dim"),
                              Text(count(block.params), style="dim"))
        self.query_one("#layer-list", Static).update(table if blocks else Text("no blocks reported", style="dim"))
