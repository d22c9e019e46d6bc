"""Warnings, checkpoints, unfreezing, the end of the run, and plugins' own text events (agent messages)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import RichLog

from tlcli.tui.state import LogLine, RunState

LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}


class RunLog(RichLog):
    run: reactive[RunState | None] = reactive(None)

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=1000, min_width=16, wrap=True, markup=False, **kwargs)
        self._shown = 0  # how many of the run's log lines are on screen

    def on_mount(self) -> None:
        self.border_title = "log"

    def watch_run(self, run: RunState | None) -> None:
        if run is None:
            return
        if run.log_count < self._shown:  # the log restarted (file replaced)
            self.clear()
            self._shown = 0
        new = min(run.log_count - self._shown, len(run.logs))
        for line in list(run.logs)[len(run.logs) - new:] if new else []:
            self.write(format_line(line))
        self._shown = run.log_count

    def note(self, text: str, level: str = "info") -> None:
        """A line from the dashboard itself (stop requested, job ended)."""
        self.write(format_line(LogLine(time.time(), 0, level, text), own=True))
        self.scroll_end(animate=False)


def format_line(line: LogLine, own: bool = False) -> Text:
    # The step says when, in the run's terms; the clock is left out so lines fit a narrow panel.
    text = Text()
    if own:
        text.append("monitor ", style="dim italic")
    elif line.level not in LEVEL_STYLES:
        text.append(f"{line.level} ", style="magenta")
    elif line.step:
        text.append(f"@{line.step} ", style="dim")
    text.append(line.text, style=LEVEL_STYLES.get(line.level, ""))
    return text
