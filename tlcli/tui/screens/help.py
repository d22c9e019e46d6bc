"""The keys, shown over the current screen by `?`."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("q", "quit"),
    ("p", "pause / resume updates (the log is still read)"),
    ("s", "ask the run to stop: it checkpoints and ends as stopped"),
    ("m", "show the next validation metric"),
    ("?", "this help"),
    ("", ""),
    ("runs table", ""),
    ("enter", "open the run"),
    ("c", "mark a run; c on a second run overlays their curves"),
    ("escape", "back to the table"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with Vertical(id="help-box"):
            yield Static(table)
            yield Static("reads only events.jsonl; escape closes", id="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "tlcli monitor keys"
