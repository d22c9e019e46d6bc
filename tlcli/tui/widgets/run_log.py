"""Warnings, checkpoints, unfreezing, the end of the run, and plugins' own text events (agent messages)."""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual import events
from textual.reactive import reactive
from textual.widgets import RichLog

from tlcli.tui.state import LogLine, RunState

LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}
MAX_LINES = 1000


class RunLog(RichLog):
    run: reactive[RunState | None] = reactive(None)

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, min_width=16, wrap=True, markup=False, **kwargs)
        self._shown = 0  # how many of the run's log lines are on screen
        # What is on screen, kept to wrap it again when the panel's width changes (RichLog wraps once).
        self._lines: deque[tuple[LogLine, bool]] = deque(maxlen=MAX_LINES)
        self._wrapped_at = 0

    def on_mount(self) -> None:
        self.border_title = "log"

    def watch_run(self, run: RunState | None) -> None:
        if run is None:
            return
        if run.log_count < self._shown:  # the log restarted (file replaced)
            self.clear()
            self._lines.clear()
            self._shown = 0
        new = min(run.log_count - self._shown, len(run.logs))
        for line in list(run.logs)[len(run.logs) - new:] if new else []:
            self._add(line, own=False)
        self._shown = run.log_count

    def note(self, text: str, level: str = "info") -> None:
        """A line from the dashboard itself (stop requested, job ended)."""
        self._add(LogLine(time.time(), 0, level, text), own=True)
        self.scroll_end(animate=False)

    def _add(self, line: LogLine, own: bool) -> None:
        self._lines.append((line, own))
        self.write(format_line(line, own))

    def on_resize(self, event: events.Resize) -> None:
        width = self.scrollable_content_region.width
        if width != self._wrapped_at and self._lines:
            self._wrapped_at = width
            self.clear()
            for line, own in self._lines:
                self.write(format_line(line, own))
        self._wrapped_at = width


def format_line(line: LogLine, own: bool = False) -> Text:
    # The step says when, in the run's terms; no clock, so lines fit a narrow panel.
    text = Text()
    if own:
        text.append("monitor ", style="dim italic")
    elif line.level not in LEVEL_STYLES:
        text.append(f"{line.level} ", style="magenta")
    elif line.step:
        text.append(f"@{line.step} ", style="dim")
    text.append(line.text, style=LEVEL_STYLES.get(line.level, ""))
    return text
