"""An agent run's conversation: per-agent usage on top, then every message, tool call and tool result."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import RichLog, Static

from tlcli.tui.state import RunState, TranscriptEntry

MAX_SHOWN = 1000
AGENT_STYLES = ("cyan", "green", "magenta", "yellow", "blue", "bright_red")


class TranscriptPanel(Vertical):
    run: reactive[RunState | None] = reactive(None)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown = 0
        self._styles: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="agent-usage")
        yield RichLog(id="transcript-log", max_lines=MAX_SHOWN, min_width=16, wrap=True, markup=False)

    def on_mount(self) -> None:
        self.border_title = "transcript"

    def watch_run(self, run: RunState | None) -> None:
        if run is None:
            return
        log = self.query_one("#transcript-log", RichLog)
        if run.transcript_count < self._shown:  # the log restarted
            log.clear()
            self._shown = 0
        new = min(run.transcript_count - self._shown, len(run.transcript))
        for entry in list(run.transcript)[len(run.transcript) - new:] if new else []:
            log.write(self._format(entry))
        self._shown = run.transcript_count
        self.query_one("#agent-usage", Static).update(self._usage(run))

    def _style(self, agent: str) -> str:
        if agent not in self._styles:
            self._styles[agent] = "bold" if agent == "user" else AGENT_STYLES[len(self._styles) % len(AGENT_STYLES)]
        return self._styles[agent]

    def _format(self, entry: TranscriptEntry) -> Text:
        text = Text()
        content = " ".join(entry.content.split())
        if entry.role == "tool":
            text.append(f"  ↳ {entry.tool_name or 'tool call'}: ", style="dim" if entry.ok else "red")
            text.append(content, style="dim" if entry.ok else "red")
            return text
        if entry.role == "user":
            text.append("task ", style="bold")
            text.append(content)
            return text
        text.append(f"{entry.agent} ", style=f"bold {self._style(entry.agent)}")
        text.append(content)
        for call in entry.tool_calls:
            text.append(f" → {call}", style="italic")
        return text

    def _usage(self, run: RunState) -> Text:
        text = Text()
        total = 0
        for name, tally in run.agents.items():
            tokens = tally.prompt_tokens + tally.completion_tokens
            total += tokens
            if text:
                text.append(" · ")
            text.append(name, style=self._style(name))
            text.append(f" {tally.turns}t {tokens:,} tok" + (f" {tally.tool_calls} tools" if tally.tool_calls else ""))
        if run.agents:
            text.append(f" · total {total:,} tok", style="bold")
        return text
