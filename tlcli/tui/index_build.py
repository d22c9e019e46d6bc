"""What the dashboard knows about an index build (`tlcli rag index`), folded from its `index` events.

One small state per event family: training lives in `RunState` itself, agent turns in its transcript, and
an index build here. An `index` event's ``data`` comes in two shapes, both read:

- ``{"files_done", "files", "chunks_done", "chunks", "chunks_per_s", "eta_s"}``: ``files`` and ``chunks``
  are the totals of this build;
- older logs: ``{"stage": "embedding", "files_done", "files", "chunks", "chunks_total", "chunks_per_s"}``,
  where ``chunks`` counts the chunks embedded so far and ``chunks_total`` the total; a ``"chunked"`` stage
  event's ``chunks`` is the total to embed; a ``"hashed"`` one counts files found (and ``changed``,
  ``removed``).

Numbers are taken only when finite and in range (a log is written by another process and may be hostile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tlcli.console.output import terminal_safe

MAX_COUNT = 10**15
MAX_RATE = 1e12
MAX_STAGE_CHARS = 40


@dataclass
class IndexBuild:
    folder: str = ""  # the index folder, from the run_start event ("index")
    stage: str = ""  # hashed / chunked / embedding, or whatever the writer names
    files_done: int | None = None
    files: int | None = None
    chunks_done: int | None = None
    chunks: int | None = None
    chunks_per_s: float | None = None
    eta_s: float | None = None  # as the writer estimated it, at `time`
    changed: int | None = None
    removed: int | None = None
    time: float | None = None  # when the last index event was written
    updates: int = 0

    def apply(self, data: dict[str, Any], when: float | None) -> None:
        self.updates += 1
        self.time = when if when is not None else self.time
        if isinstance(data.get("stage"), str):
            self.stage = _short(data["stage"])
        self.files = _count(data.get("files"), self.files)
        self.files_done = _count(data.get("files_done"), self.files_done)
        self.changed = _count(data.get("changed"), self.changed)
        self.removed = _count(data.get("removed"), self.removed)
        if "chunks_done" in data:  # the current shape: chunks is the total
            self.chunks_done = _count(data.get("chunks_done"), self.chunks_done)
            self.chunks = _count(data.get("chunks"), self.chunks)
        elif "chunks_total" in data:  # older embedding events: chunks counts what is done
            self.chunks_done = _count(data.get("chunks"), self.chunks_done)
            self.chunks = _count(data.get("chunks_total"), self.chunks)
        else:  # a total alone (older "chunked" events): nothing embedded yet
            total = _count(data.get("chunks"), None)
            if total is not None:
                self.chunks = total
                self.chunks_done = self.chunks_done if self.chunks_done is not None else 0
        self.chunks_per_s = _number(data.get("chunks_per_s"), self.chunks_per_s, MAX_RATE)
        # An estimate is only as fresh as its event: a later event without one drops the old one.
        self.eta_s = _number(data.get("eta_s"), None, MAX_COUNT)

    @property
    def files_fraction(self) -> float | None:
        return _fraction(self.files_done, self.files)

    @property
    def chunks_fraction(self) -> float | None:
        return _fraction(self.chunks_done, self.chunks)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left: the writer's estimate, less the time since it was written; else the chunks left at
        the last rate."""
        if self.eta_s is not None:
            since = max(0.0, now - self.time) if now is not None and self.time is not None else 0.0
            return max(0.0, self.eta_s - since)
        if self.chunks is None or self.chunks_done is None or not self.chunks_per_s:
            return None
        return max(0, self.chunks - self.chunks_done) / self.chunks_per_s


def _number(value: Any, default: float | None, limit: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    try:
        value = float(value)
    except OverflowError:
        return default
    return value if math.isfinite(value) and 0 <= value <= limit else default


def _count(value: Any, default: int | None) -> int | None:
    value = _number(value, None, MAX_COUNT)
    return int(value) if value is not None else default


def _fraction(done: int | None, total: int | None) -> float | None:
    if done is None or not total:
        return None
    return max(0.0, min(1.0, done / total))


def _short(value: str) -> str:
    text = terminal_safe(value)
    return text if len(text) <= MAX_STAGE_CHARS else text[: MAX_STAGE_CHARS - 1] + "…"
