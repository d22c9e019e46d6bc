"""What the dashboard knows about one run, folded from its events (see `tlcli/runs/events.py`).

Plain Python, no Textual: the watcher thread folds events into a `RunState` and hands the screen a
`snapshot()`, which the screen only reads.

One small state per event family, and the run's `family` (chosen by the kinds it writes) picks the panels:
"training" (metric / eval / layers / checkpoint: the fields of `RunState` itself), "index" (`index`
events: an `IndexBuild`, see `index_build.py`) and "agents" (`message` events: the transcript).

Status rules (`judge_status`):

- a `run_end` line gives the status (finished / stopped / interrupted / failed);
- no `run_start` yet: "waiting";
- the writer ran on this host: "running" while its pid exists, else "interrupted" (at its last step);
- the writer ran on another host (a synced run folder): we cannot look at its process, so "running?" while
  the last event is younger than `STALE_AFTER_S`, then "interrupted?".

Any event is folded without raising: a log is written by another process and may be corrupt or hostile
(``"pid": 1e30``, ``"step": Infinity``, a string where a number belongs, ESC sequences in a message). Numbers
are taken only when finite and in range, text is made terminal-safe (control characters escaped, secrets
masked) and shortened here, once, so every widget can show what it gets.
"""

from __future__ import annotations

import copy
import math
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tlcli.runs.events import writer_alive
from tlcli.console.output import terminal_safe
from tlcli.tui.index_build import IndexBuild

STALE_AFTER_S = 600.0
MAX_LOG_LINES = 2000
MAX_TRANSCRIPT = 1000
MAX_AGENTS = 64
MAX_CALLS_SHOWN = 8
# Per series; past this, every other point is dropped, so a long run keeps its whole shape in bounded memory.
MAX_SERIES_POINTS = 2000
ENDED_STATUSES = ("finished", "stopped", "interrupted", "failed")
# Fields that make a plugin's own event kind readable in the log panel (agents' `message` events have
# their own transcript panel).
TEXT_FIELDS = ("message", "content", "text")
# Longest text kept per log line and per name (a 1 MB message would only slow every redraw).
MAX_TEXT_CHARS = 2000
MAX_NAME_CHARS = 200
# Numbers outside these bounds are not a step count, a pid or a duration: the field is ignored.
MAX_COUNT = 10**15
# A log naming thousands of metrics or blocks would make every snapshot and redraw slow: past these, new
# names are ignored (real runs report a handful of metrics and at most a few hundred blocks).
MAX_METRICS = 64
MAX_BLOCKS = 2000
MAX_TIME = 1e11  # Unix seconds, year 5138


@dataclass
class Series:
    """(step, value) points of one curve, thinned by halves once it grows past `MAX_SERIES_POINTS`."""

    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: float, value: Any) -> None:
        value = _float(value)
        if value is None:  # not a number, NaN or infinite: nothing a chart can draw
            return
        if self.steps and step < self.steps[-1]:
            self.drop_after(step)
        self.steps.append(step)
        self.values.append(value)
        if len(self.steps) > MAX_SERIES_POINTS:
            self.steps, self.values = self.steps[::2], self.values[::2]

    def drop_after(self, step: float) -> None:
        """Forget points past `step` (a resumed run starts again from its checkpoint)."""
        keep = next((i for i, s in enumerate(self.steps) if s > step), len(self.steps))
        del self.steps[keep:], self.values[keep:]

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    def __len__(self) -> int:
        return len(self.steps)


@dataclass
class LogLine:
    time: float | None
    step: int
    level: str  # info / warning / error, or a plugin kind such as "message"
    text: str


@dataclass
class TranscriptEntry:
    """One agent message (a `message` event): who, which chat role, the text, tool calls and results."""

    step: int
    agent: str
    role: str  # user / assistant / tool
    content: str
    tool_name: str | None = None
    tool_calls: list[str] = field(default_factory=list)  # "name(arguments)" of each call
    ok: bool = True


@dataclass
class AgentUsage:
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0


@dataclass
class Block:
    name: str
    params: int
    trainable: bool


@dataclass(eq=False)  # compared by identity: each snapshot is a new object
class RunState:
    run_dir: Path
    name: str = ""
    command: str = ""
    plugin: str = ""
    model: str = ""
    device: str = ""
    precision: str = ""
    pid: int | None = None
    host: str | None = None
    started: float | None = None
    last_time: float | None = None
    step: int = 0
    epoch: float = 0.0
    total_steps: int | None = None
    epochs: float | None = None
    params_trainable: int | None = None
    params_total: int | None = None
    first_metric: tuple[float, int] | None = None  # (time, step) when throughput measuring began
    loss: Series = field(default_factory=Series)
    val: dict[str, Series] = field(default_factory=dict)
    lr: dict[str, float] = field(default_factory=dict)
    samples_per_s: float | None = None
    data_wait: float | None = None
    memory: dict[str, float] = field(default_factory=dict)
    monitor: str | None = None
    best: float | None = None
    best_step: int | None = None
    blocks: list[Block] = field(default_factory=list)
    checkpoints: int = 0  # checkpoint events seen (a stopped run with one can be resumed)
    logs: deque = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    log_count: int = 0  # lines ever added; the log panel appends the ones it has not shown
    transcript: deque = field(default_factory=lambda: deque(maxlen=MAX_TRANSCRIPT))
    transcript_count: int = 0  # entries ever added; the transcript panel appends the ones it has not shown
    agents: dict[str, AgentUsage] = field(default_factory=dict)
    index: IndexBuild | None = None  # an index build's progress (a run with `index` events)
    end: dict[str, Any] | None = None
    end_time: float | None = None
    status: str = "waiting"
    events_seen: int = 0
    seen_start: bool = False
    unreadable_events: int = 0  # events the folding code failed on (a bug of ours; the event is skipped)
    read_error: str | None = None  # why the log cannot be read now (said once in the log panel)

    def __post_init__(self) -> None:
        self.name = _text(self.name)

    # ---- folding -------------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        """Fold one event in; unknown kinds are ignored unless they carry text for the log panel.

        Never raises: the typed reading below handles any JSON value; should it still fail (a bug), the
        event is counted in ``unreadable_events``, said once in the log, and skipped."""
        if not isinstance(event, dict):
            return
        try:
            self._apply(event)
        except Exception as error:  # the dashboard must outlive one bad event
            self.unreadable_events += 1
            if self.unreadable_events == 1:
                self.add_log(None, self.step, "warning",
                             f"skipped an event the monitor could not read ({type(error).__name__})")

    def note_read_error(self, error: str | None) -> None:
        """The log could not be read this time (``error``) or could again (None); a new reason is logged."""
        if error is not None and error != self.read_error:
            self.add_log(None, self.step, "error", error)
        self.read_error = error

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        step = _count(event.get("step"), self.step)
        when = _time(event.get("time"))
        self.events_seen += 1
        if when is not None:
            self.last_time = when if self.last_time is None else max(self.last_time, when)
        if not self.name and isinstance(event.get("run"), str):
            self.name = _text(event["run"])
        handler = getattr(self, f"_on_{kind}", None) if kind in _KNOWN_KINDS else None
        if handler is not None:
            handler(data, step, when)
        elif isinstance(kind, str):
            self._on_plugin_kind(kind, data, step, when)
        if kind != "run_start":
            self.step = max(self.step, step) if kind != "run_end" else step or self.step
            epoch = _count(event.get("epoch"), None, cast=float)
            if epoch is not None and kind == "metric":
                self.epoch = epoch

    def _on_run_start(self, data: dict, step: int, when: float | None) -> None:
        resumed_from = _count(data.get("resumed_from"), None)
        if resumed_from is not None:
            self.loss.drop_after(resumed_from)
            for series in self.val.values():
                series.drop_after(resumed_from)
            self.add_log(when, step, "info", f"resumed from step {resumed_from}")
        if not self.seen_start or self.end is not None:
            self.started = when
        self.seen_start = True
        self.end = self.end_time = None
        self.first_metric = None
        self.step = resumed_from if resumed_from is not None else step
        for key in ("command", "plugin", "model", "device", "precision"):
            if isinstance(data.get(key), (str, int, float)) and not isinstance(data.get(key), bool):
                setattr(self, key, _text(data[key]))
        # Whatever is not a plausible pid (-1, 0, 1e30, "123") is no pid: the status is then judged by the
        # age of the last event, never "running" for ever.
        pid = data.get("pid")
        self.pid = pid if type(pid) is int and 0 < pid < 2**31 else None
        self.host = data.get("host") if isinstance(data.get("host"), str) else None
        self.total_steps = _count(data.get("total_steps"), self.total_steps, positive=True)
        self.epochs = _count(data.get("epochs"), self.epochs, cast=float, positive=True)
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        self.params_trainable = _count(params.get("trainable"), self.params_trainable)
        self.params_total = _count(params.get("total"), self.params_total)
        self._set_blocks(data.get("blocks"))
        if isinstance(data.get("index"), str):  # `rag index` names the index it builds
            self.index = self.index or IndexBuild()
            self.index.folder = _text(data["index"])
        what = " · ".join(x for x in (self.command or self.plugin, self.model, self.device) if x)
        self.add_log(when, step, "info", f"run started{': ' + what if what else ''}")

    def _on_metric(self, data: dict, step: int, when: float | None) -> None:
        self.loss.add(step, data.get("loss"))
        if isinstance(data.get("lr"), dict):
            self.lr = {_text(k): v for k, v in ((k, _float(v)) for k, v in data["lr"].items()) if v is not None}
        self.samples_per_s = _float(data.get("samples_per_s"), self.samples_per_s)
        self.data_wait = _float(data.get("data_wait"), self.data_wait)
        if isinstance(data.get("memory"), dict):
            self.memory = {k: v for k, v in ((k, _float(v)) for k, v in data["memory"].items()) if v is not None}
        if self.first_metric is None and when is not None:
            self.first_metric = (when, step)

    def _on_eval(self, data: dict, step: int, when: float | None) -> None:
        metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
        for name, value in metrics.items():
            name = _text(name)
            if name in self.val or len(self.val) < MAX_METRICS:
                self.val.setdefault(name, Series()).add(step, value)
        if isinstance(data.get("monitor"), str):
            self.monitor = _text(data["monitor"])
        self.best = _float(data.get("best"), self.best)
        if data.get("is_best") is True:
            self.best_step = step

    def _on_layers(self, data: dict, step: int, when: float | None) -> None:
        self._set_blocks(data.get("blocks"))
        unfrozen = [_text(n) for n in data.get("unfrozen")] if isinstance(data.get("unfrozen"), list) else []
        if unfrozen:
            self.add_log(when, step, "info", f"unfroze {', '.join(unfrozen)}")
        trainable = sum(b.params for b in self.blocks if b.trainable)
        if self.blocks:
            self.params_trainable = trainable

    def _on_checkpoint(self, data: dict, step: int, when: float | None) -> None:
        kind = data.get("kind") if isinstance(data.get("kind"), str) and data.get("kind") else "last"
        self.checkpoints += 1
        self.add_log(when, step, "info", f"saved {kind} checkpoint")

    def _on_index(self, data: dict, step: int, when: float | None) -> None:
        self.index = self.index or IndexBuild()
        self.index.apply(data, when)

    def _on_log(self, data: dict, step: int, when: float | None) -> None:
        level = data.get("level") if data.get("level") in ("info", "warning", "error") else "info"
        self.add_log(when, step, level, _text(data.get("message", ""), MAX_TEXT_CHARS))

    def _on_run_end(self, data: dict, step: int, when: float | None) -> None:
        self.end = {"status": _end_status(data.get("status")), "wall_s": _count(data.get("wall_s"), None, cast=float)}
        self.end_time = when
        self.best = _float(data.get("best"), self.best)
        if isinstance(data.get("monitor"), str):
            self.monitor = _text(data["monitor"])
        self.status = self.end["status"]
        summary = f"run {self.status}"
        if self.best is not None and self.monitor:
            summary += f": best {self.monitor} {self.best:.4g}"
        if self.end["wall_s"] is not None:
            from tlcli.tui.format import duration

            summary += f" in {duration(self.end['wall_s'])}"
        level = "error" if self.status == "failed" else "warning" if self.status != "finished" else "info"
        self.add_log(when, step, level, summary)
        if data.get("error"):
            self.add_log(when, step, "error", _text(data["error"], MAX_TEXT_CHARS))

    def _on_message(self, data: dict, step: int) -> None:
        """An agent's turn: into the transcript, and its usage into the per-agent tally (at most
        `MAX_AGENTS` names; a log inventing more shares one "(others)" tally)."""
        agent = _text(data.get("agent") or data.get("name") or "?")
        if agent not in self.agents and len(self.agents) >= MAX_AGENTS:
            agent = "(others)"
        role = _text(data.get("role") or "assistant", 40)
        raw_calls = data.get("tool_calls") if isinstance(data.get("tool_calls"), list) else []
        calls = [f"{_text(c.get('name'), 80)}({_flat(c.get('arguments'), MAX_NAME_CHARS)})"
                 for c in raw_calls[:MAX_CALLS_SHOWN] if isinstance(c, dict)]
        tool_name = _text(data["tool_name"], 80) if isinstance(data.get("tool_name"), str) else None
        entry = TranscriptEntry(step, agent, role, _flat(data.get("content") or "", MAX_TEXT_CHARS), tool_name,
                                calls, data.get("ok") is not False)
        self.transcript.append(entry)
        self.transcript_count += 1
        if role == "assistant":
            tally = self.agents.setdefault(agent, AgentUsage())
            tally.turns += 1
            usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            tally.prompt_tokens = min(MAX_COUNT, tally.prompt_tokens + _count(usage.get("prompt_tokens"), 0))
            tally.completion_tokens = min(MAX_COUNT, tally.completion_tokens + _count(usage.get("completion_tokens"), 0))
        elif role == "tool" and tool_name and agent in self.agents:
            self.agents[agent].tool_calls += 1

    def _on_plugin_kind(self, kind: str, data: dict, step: int, when: float | None) -> None:
        if kind == "message":  # shown by the transcript panel, not the log
            self._on_message(data, step)
            return
        text = next((data[f] for f in TEXT_FIELDS if isinstance(data.get(f), str)), None)
        if text is None:
            return
        who = next((data[f] for f in ("role", "name", "agent") if isinstance(data.get(f), str)), None)
        text = _text(text, MAX_TEXT_CHARS)
        self.add_log(when, step, _text(kind, 40), f"{_text(who)}: {text}" if who else text)

    def _set_blocks(self, blocks: Any) -> None:
        if not isinstance(blocks, list):
            return
        self.blocks = [
            Block(_text(b.get("name", "?")), _count(b.get("params"), 0), b.get("trainable") is True)
            for b in blocks[:MAX_BLOCKS]
            if isinstance(b, dict)
        ]

    def add_log(self, when: float | None, step: int, level: str, text: str) -> None:
        """One line for the log panel; ``text`` is made terminal-safe here (one line, no escapes)."""
        self.logs.append(LogLine(when, step, level, _text(text, MAX_TEXT_CHARS)))
        self.log_count += 1

    # ---- derived -------------------------------------------------------------------------------

    def judge_status(
        self,
        now: float | None = None,
        this_host: str | None = None,
        is_alive: Callable[[int | None], bool] = writer_alive,
    ) -> str:
        """Update and return `status` (see the module docstring for the rules)."""
        if self.end is not None:
            self.status = _end_status(self.end.get("status"))
        elif not self.seen_start and not self.events_seen:
            self.status = "waiting"
        elif self.host and self.host != (this_host or socket.gethostname()):
            now = time.time() if now is None else now
            fresh = self.last_time is not None and now - self.last_time < STALE_AFTER_S
            self.status = "running?" if fresh else "interrupted?"
        elif self.pid is not None:
            self.status = "running" if is_alive(self.pid) else "interrupted"
        else:  # no pid recorded: judge by staleness as for another host
            now = time.time() if now is None else now
            fresh = self.last_time is not None and now - self.last_time < STALE_AFTER_S
            self.status = "running?" if fresh else "interrupted?"
        return self.status

    @property
    def family(self) -> str:
        """Which panels show this run: "index", "agents" or "training" (the kinds it has written)."""
        if self.index is not None:
            return "index"
        if self.transcript_count:
            return "agents"
        return "training"

    @property
    def is_live(self) -> bool:
        return self.status in ("running", "running?")

    @property
    def val_metric(self) -> str | None:
        """The metric the run monitors, else the first one it reported."""
        if self.monitor and self.monitor in self.val:
            return self.monitor
        return next(iter(self.val), None)

    @property
    def progress(self) -> float | None:
        """Done, from 0 to 1: steps of a training run, chunks (else files) of an index build."""
        if self.index is not None:
            index = self.index
            return index.chunks_fraction if index.chunks_fraction is not None else index.files_fraction
        if not self.total_steps or self.total_steps <= 0:
            return None
        return max(0.0, min(1.0, self.step / self.total_steps))

    def elapsed(self, now: float | None = None) -> float | None:
        if self.started is None:
            return None
        if self.end is not None and _float(self.end.get("wall_s")) is not None:
            return _float(self.end["wall_s"])
        if self.is_live:
            return max(0.0, (time.time() if now is None else now) - self.started)
        return max(0.0, (self.end_time or self.last_time or self.started) - self.started)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the step rate seen since the first metric of this (possibly resumed) run; for an
        index build, its own estimate."""
        if self.index is not None:
            return self.index.eta(time.time() if now is None else now) if self.is_live else None
        if not self.is_live or not self.total_steps or self.first_metric is None or self.last_time is None:
            return None
        t0, step0 = self.first_metric
        if self.last_time <= t0 or self.step <= step0:
            return None
        rate = (self.step - step0) / (self.last_time - t0)
        return max(0.0, (self.total_steps - self.step) / rate)

    def snapshot(self) -> "RunState":
        """A copy the UI can read while the watcher keeps folding into this one."""
        copied = copy.copy(self)
        copied.loss = Series(list(self.loss.steps), list(self.loss.values))
        copied.val = {k: Series(list(s.steps), list(s.values)) for k, s in self.val.items()}
        copied.lr = dict(self.lr)
        copied.memory = dict(self.memory)
        copied.blocks = list(self.blocks)
        copied.logs = deque(self.logs, maxlen=MAX_LOG_LINES)
        copied.transcript = deque(self.transcript, maxlen=MAX_TRANSCRIPT)
        copied.agents = {name: copy.copy(tally) for name, tally in self.agents.items()}
        copied.index = copy.copy(self.index)
        return copied


_KNOWN_KINDS = ("run_start", "metric", "eval", "layers", "checkpoint", "log", "index", "run_end")


def _float(value: Any, default: float | None = None) -> float | None:
    """A finite float, else ``default`` (bools, strings, NaN, inf and ints too big for a float are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    try:
        value = float(value)
    except OverflowError:  # a 400-digit JSON integer
        return default
    return value if math.isfinite(value) else default


def _count(value: Any, default: Any, cast: type = int, positive: bool = False) -> Any:
    """A count (step, epoch, parameters): a finite number from 0 (or above 0) to MAX_COUNT, else ``default``."""
    value = _float(value)
    if value is None or not 0 <= value <= MAX_COUNT or (positive and value <= 0):
        return default
    return cast(value)


def _time(value: Any) -> float | None:
    value = _float(value)
    return value if value is not None and 0 <= value <= MAX_TIME else None


def _flat(value: Any, limit: int) -> str:
    """Message text on one line: its line breaks and runs of spaces become one space, then as `_text`."""
    return _text(" ".join(value.split()) if isinstance(value, str) else value, limit)


def _text(value: Any, limit: int = MAX_NAME_CHARS) -> str:
    """``value`` as one terminal-safe line (control characters escaped, secrets masked), at most ``limit``."""
    if not isinstance(value, str):
        try:
            value = str(value)
        except (RecursionError, ValueError):  # deeply nested JSON; an int too long to print
            value = f"<{type(value).__name__}>"
    text = terminal_safe(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _end_status(value: Any) -> str:
    """A run_end's status; anything but the four known ones reads "interrupted" (ended, cause unknown)."""
    if value is None or value == "":
        return "finished"
    return value if isinstance(value, str) and value in ENDED_STATUSES else "interrupted"


def load_run(run_dir: Path) -> RunState:
    """A run's state from its whole log, read once (the runs table and tests use this)."""
    from tlcli.runs.paths import EVENTS_FILE
    from tlcli.tui.tail import EventTail

    state = RunState(Path(run_dir), name=Path(run_dir).name)
    tail = EventTail(Path(run_dir) / EVENTS_FILE)
    while True:
        found = tail.read_new()
        for event in found.events:
            state.apply(event)
        state.note_read_error(found.error)
        if not found.more_pending:
            break
    state.judge_status()
    return state
