"""A folder of runs: one row each; enter opens a run, c on two runs overlays their curves."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tlcli.console.output import display_path
from tlcli.tui.format import clock, number
from tlcli.tui.runs import RunReader, find_runs
from tlcli.tui.state import RunState
from tlcli.tui.widgets.run_header import STATUS_STYLES

REFRESH_S = 2.0
COLUMNS = ("run", "command", "status", "progress", "best", "started")


class RunsScanned(Message):
    def __init__(self, runs: list[RunState]) -> None:
        super().__init__()
        self.runs = runs

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsScanned)


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open_run", "Open", show=False),
        Binding("c", "compare", "Compare"),
        Binding("r", "rescan", "Refresh", show=False),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self._reader = RunReader()
        self._marked: Path | None = None
        self._runs: dict[str, RunState] = {}

    def compose(self) -> ComposeResult:
        # Names come from the file system and from event logs: never read as markup (a "[/x]" would raise).
        yield Static(f"runs in {display_path(self.root)}", id="runs-title", markup=False)
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self._show_hint()
        self.action_rescan()
        self.set_interval(REFRESH_S, self.action_rescan)

    def action_rescan(self) -> None:
        self._scan()

    @work(thread=True, exclusive=True, group="scan")
    def _scan(self) -> None:
        states = []
        for path in find_runs(self.root):
            try:
                states.append(self._reader.read(path))
            except Exception as error:  # one unreadable run must not take the table down
                state = RunState(path, name=path.name)
                state.note_read_error(f"cannot read {path.name}: {type(error).__name__}")
                states.append(state)
        self.post_message(RunsScanned(states))

    @on(RunsScanned)
    def show_runs(self, message: RunsScanned) -> None:
        table = self.query_one(DataTable)
        seen = set()
        for state in message.runs:
            key = str(state.run_dir)
            seen.add(key)
            self._runs[key] = state
            cells = self._cells(state)
            if key in table.rows:
                for column, value in zip(COLUMNS, cells):
                    table.update_cell(key, column, value)
            else:
                table.add_row(*cells, key=key)
        for key in [k.value for k in table.rows if k.value not in seen]:
            table.remove_row(key)
            self._runs.pop(key, None)
        self._show_hint()

    def _cells(self, state: RunState) -> list:
        name = Text(display_path(state.run_dir.name))
        if self._marked == state.run_dir:
            name.stylize("reverse")
        if state.index is not None:  # an index build: chunks embedded of those to embed
            chunks = state.index.chunks
            progress = f"{state.index.chunks_done or 0}/{chunks} chunks" if chunks is not None else "- chunks"
        else:
            progress = f"{state.step}/{state.total_steps}" if state.total_steps else str(state.step)
        if state.progress is not None:
            progress += f" {state.progress:.0%}"
        best = f"{state.monitor or ''} {number(state.best)}".strip() if state.best is not None else "-"
        # Text cells: a DataTable reads plain strings as markup.
        return [
            name,
            Text(state.plugin or state.command or "-"),
            Text(state.status, style=STATUS_STYLES.get(state.status, "")),
            Text(progress),
            Text(best),
            Text(clock(state.started)),
        ]

    def _show_hint(self) -> None:
        if not self._runs:
            hint = (f"no runs in {display_path(self.root)} yet (a run folder holds events.jsonl); "
                    f"refreshing every {REFRESH_S:g}s")
        elif self._marked is not None:
            hint = f"marked {display_path(self._marked.name)}: press c on another run to compare, c again to unmark"
        else:
            hint = "enter: open · c: mark two runs to overlay their curves · ?: help"
        self.query_one("#runs-hint", Static).update(hint)

    def _cursor_run(self) -> Path | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return Path(key) if key else None

    @on(DataTable.RowSelected)
    def open_selected(self, event: DataTable.RowSelected) -> None:
        self._open(Path(event.row_key.value))

    def action_open_run(self) -> None:
        run_dir = self._cursor_run()
        if run_dir is not None:
            self._open(run_dir)

    def _open(self, run_dir: Path) -> None:
        from tlcli.tui.screens.run import RunScreen

        self.app.push_screen(RunScreen(run_dir, can_go_back=True))

    def action_compare(self) -> None:
        run_dir = self._cursor_run()
        if run_dir is None:
            return
        if self._marked is None or self._marked == run_dir:
            self._marked = None if self._marked == run_dir else run_dir
            self._restyle()
            return
        from tlcli.tui.screens.compare import CompareScreen

        first, self._marked = self._marked, None
        self._restyle()
        self.app.push_screen(CompareScreen(first, run_dir))

    def _restyle(self) -> None:
        table = self.query_one(DataTable)
        for key, state in self._runs.items():
            table.update_cell(key, "run", self._cells(state)[0])
        self._show_hint()
