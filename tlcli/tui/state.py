"""What the dashboard knows about one run, folded from its events (see `tlcli/events.py`).

Plain Python, no Textual: the watcher thread folds events into a `RunState` and hands the screen a
`snapshot()`, which the screen only reads.

Status rules (`judge_status`):

- a `run_end` line gives the status (finished / stopped / interrupted / failed);
- no `run_start` yet: "waiting";
- the writer ran on this host: "running" while its pid exists, else "interrupted" (at its last step);
- the writer ran on another host (a synced run folder): we cannot look at its process, so "running?" while
  the last event is younger than `STALE_AFTER_S`, then "interrupted?".
"""

from __future__ import annotations

import copy
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tlcli.events import writer_alive

STALE_AFTER_S = 600.0
MAX_LOG_LINES = 2000
MAX_TRANSCRIPT = 1000
# Per series; past this, every other point is dropped, so a long run keeps its whole shape in bounded memory.
MAX_SERIES_POINTS = 2000
ENDED_STATUSES = ("finished", "stopped", "interrupted", "failed")
# Fields that make a plugin's own event kind readable in the log panel (agents' `message` events have
# their own transcript panel).
TEXT_FIELDS = ("message", "content", "text")


@dataclass
class Series:
    """(step, value) points of one curve, thinned by halves once it grows past `MAX_SERIES_POINTS`."""

    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: float, value: Any) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            return
        if self.steps and step < self.steps[-1]:
            self.drop_after(step)
        self.steps.append(step)
        self.values.append(float(value))
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
    logs: deque = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    log_count: int = 0  # lines ever added; the log panel appends the ones it has not shown
    transcript: deque = field(default_factory=lambda: deque(maxlen=MAX_TRANSCRIPT))
    transcript_count: int = 0  # entries ever added; the transcript panel appends the ones it has not shown
    agents: dict[str, AgentUsage] = field(default_factory=dict)
    end: dict[str, Any] | None = None
    end_time: float | None = None
    status: str = "waiting"
    events_seen: int = 0
    seen_start: bool = False

    # ---- folding -------------------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one event in; unknown kinds are ignored unless they carry text for the log panel."""
        kind = event.get("kind")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        step = _int(event.get("step"), self.step)
        when = _float(event.get("time"))
        self.events_seen += 1
        if when is not None:
            self.last_time = when if self.last_time is None else max(self.last_time, when)
        if not self.name and isinstance(event.get("run"), str):
            self.name = event["run"]
        handler = getattr(self, f"_on_{kind}", None) if kind in _KNOWN_KINDS else None
        if handler is not None:
            handler(data, step, when)
        else:
            self._on_plugin_kind(str(kind), data, step, when)
        if kind != "run_start":
            self.step = max(self.step, step) if kind != "run_end" else step or self.step
            epoch = _float(event.get("epoch"))
            if epoch is not None and kind == "metric":
                self.epoch = epoch

    def _on_run_start(self, data: dict, step: int, when: float | None) -> None:
        resumed_from = data.get("resumed_from")
        if isinstance(resumed_from, (int, float)):
            self.loss.drop_after(resumed_from)
            for series in self.val.values():
                series.drop_after(resumed_from)
            self.add_log(when, step, "info", f"resumed from step {int(resumed_from)}")
        if not self.seen_start or self.end is not None:
            self.started = when
        self.seen_start = True
        self.end = self.end_time = None
        self.first_metric = None
        self.step = int(resumed_from) if isinstance(resumed_from, (int, float)) else step
        for key in ("command", "plugin", "model", "device", "precision"):
            if data.get(key) is not None:
                setattr(self, key, str(data[key]))
        self.pid = _int(data.get("pid"), None)
        self.host = data.get("host") if isinstance(data.get("host"), str) else None
        self.total_steps = _int(data.get("total_steps"), self.total_steps)
        self.epochs = _float(data.get("epochs")) or self.epochs
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        self.params_trainable = _int(params.get("trainable"), self.params_trainable)
        self.params_total = _int(params.get("total"), self.params_total)
        self._set_blocks(data.get("blocks"))
        what = " · ".join(x for x in (self.command or self.plugin, self.model, self.device) if x)
        self.add_log(when, step, "info", f"run started{': ' + what if what else ''}")

    def _on_metric(self, data: dict, step: int, when: float | None) -> None:
        self.loss.add(step, data.get("loss"))
        if isinstance(data.get("lr"), dict):
            self.lr = {str(k): v for k, v in data["lr"].items() if isinstance(v, (int, float))}
        self.samples_per_s = _float(data.get("samples_per_s"), self.samples_per_s)
        self.data_wait = _float(data.get("data_wait"), self.data_wait)
        if isinstance(data.get("memory"), dict):
            self.memory = {k: v for k, v in data["memory"].items() if isinstance(v, (int, float))}
        if self.first_metric is None and when is not None:
            self.first_metric = (when, step)

    def _on_eval(self, data: dict, step: int, when: float | None) -> None:
        metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
        for name, value in metrics.items():
            self.val.setdefault(str(name), Series()).add(step, value)
        if isinstance(data.get("monitor"), str):
            self.monitor = data["monitor"]
        if isinstance(data.get("best"), (int, float)):
            self.best = float(data["best"])
        if data.get("is_best"):
            self.best_step = step

    def _on_layers(self, data: dict, step: int, when: float | None) -> None:
        self._set_blocks(data.get("blocks"))
        unfrozen = [str(n) for n in data.get("unfrozen") or []]
        if unfrozen:
            self.add_log(when, step, "info", f"unfroze {', '.join(unfrozen)}")
        trainable = sum(b.params for b in self.blocks if b.trainable)
        if self.blocks:
            self.params_trainable = trainable

    def _on_checkpoint(self, data: dict, step: int, when: float | None) -> None:
        self.add_log(when, step, "info", f"saved {data.get('kind') or 'last'} checkpoint")

    def _on_log(self, data: dict, step: int, when: float | None) -> None:
        level = data.get("level") if data.get("level") in ("info", "warning", "error") else "info"
        self.add_log(when, step, level, str(data.get("message", "")))

    def _on_run_end(self, data: dict, step: int, when: float | None) -> None:
        self.end = dict(data)
        self.end_time = when
        if isinstance(data.get("best"), (int, float)):
            self.best = float(data["best"])
        if isinstance(data.get("monitor"), str):
            self.monitor = data["monitor"]
        self.status = str(data.get("status") or "finished")
        summary = f"run {self.status}"
        if self.best is not None and self.monitor:
            summary += f": best {self.monitor} {self.best:.4g}"
        if isinstance(data.get("wall_s"), (int, float)):
            from tlcli.tui.format import duration

            summary += f" in {duration(data['wall_s'])}"
        level = "error" if self.status == "failed" else "warning" if self.status != "finished" else "info"
        self.add_log(when, step, level, summary)
        if data.get("error"):
            self.add_log(when, step, "error", str(data["error"]))

    def _on_message(self, data: dict, step: int) -> None:
        """An agent's turn: into the transcript, and its usage into the per-agent tally."""
        agent = str(data.get("agent") or data.get("name") or "?")
        role = str(data.get("role") or "assistant")
        calls = [f"{c.get('name')}({c.get('arguments')})" for c in data.get("tool_calls") or [] if isinstance(c, dict)]
        entry = TranscriptEntry(step, agent, role, str(data.get("content") or ""),
                                data.get("tool_name") if isinstance(data.get("tool_name"), str) else None,
                                calls, data.get("ok") is not False)
        self.transcript.append(entry)
        self.transcript_count += 1
        if role == "assistant":
            tally = self.agents.setdefault(agent, AgentUsage())
            tally.turns += 1
            usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            tally.prompt_tokens += _int(usage.get("prompt_tokens"), 0) or 0
            tally.completion_tokens += _int(usage.get("completion_tokens"), 0) or 0
        elif role == "tool" and entry.tool_name and agent in self.agents:
            self.agents[agent].tool_calls += 1

    def _on_plugin_kind(self, kind: str, data: dict, step: int, when: float | None) -> None:
        if kind == "message":  # shown by the transcript panel, not the log
            self._on_message(data, step)
            return
        text = next((data[f] for f in TEXT_FIELDS if isinstance(data.get(f), str)), None)
        if text is None:
            return
        who = next((data[f] for f in ("role", "name", "agent") if isinstance(data.get(f), str)), None)
        self.add_log(when, step, kind, f"{who}: {text}" if who else text)

    def _set_blocks(self, blocks: Any) -> None:
        if not isinstance(blocks, list):
            return
        self.blocks = [
            Block(str(b.get("name", "?")), _int(b.get("params"), 0) or 0, bool(b.get("trainable")))
            for b in blocks
            if isinstance(b, dict)
        ]

    def add_log(self, when: float | None, step: int, level: str, text: str) -> None:
        self.logs.append(LogLine(when, step, level, text))
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
            self.status = str(self.end.get("status") or "finished")
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
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    def elapsed(self, now: float | None = None) -> float | None:
        if self.started is None:
            return None
        if self.end is not None and isinstance(self.end.get("wall_s"), (int, float)):
            return float(self.end["wall_s"])
        if self.is_live:
            return max(0.0, (time.time() if now is None else now) - self.started)
        return max(0.0, (self.end_time or self.last_time or self.started) - self.started)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the step rate seen since the first metric of this (possibly resumed) run."""
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
        return copied


_KNOWN_KINDS = ("run_start", "metric", "eval", "layers", "checkpoint", "log", "run_end")


def _int(value: Any, default: int | None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return int(value)


def _float(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return float(value)


def load_run(run_dir: Path) -> RunState:
    """A run's state from its whole log, read once (the runs table and tests use this)."""
    from tlcli.paths import EVENTS_FILE
    from tlcli.tui.tail import EventTail

    state = RunState(Path(run_dir), name=Path(run_dir).name)
    tail = EventTail(Path(run_dir) / EVENTS_FILE)
    while True:
        found = tail.read_new()
        for event in found.events:
            state.apply(event)
        if not found.more_pending:
            break
    state.judge_status()
    return state
