"""A run's numbers over time, read from its events: one row per ``metric`` or ``eval`` event.

The one reading shared by everything that shows a run's curves: the live metric sinks (``--report-to csv``,
``--report-to tensorboard``), ``tlcli runs export``, ``tlcli plot`` and ``tlcli runs compare``. The live
sinks are fed the very lines written to ``events.jsonl`` (parsed back), so a file written while the run
trains and one exported from its log afterwards hold the same numbers.

A row: ``Row(time, stage, step, epoch, values)``. Its ``values``, by event kind:

- ``metric``: ``loss``, ``lr/<group>`` (one a parameter group), ``samples_per_s``, ``data_wait``,
  ``memory/rss_mb``, ``memory/gpu_mb`` (nested objects joined with ``/``; ``epoch_progress`` is the row's
  ``epoch``);
- ``eval``: the evaluation's metrics as the task names them (``val_loss``, ``val_accuracy``, ...).

Only finite numbers are kept. A resumed run trains again from its checkpoint: a ``run_start`` with
``resumed_from: S`` restarts its stage's history at step S (rows of that stage past S are dropped), as
TensorBoard drops them on a restart. Imports nothing heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

# Numbers of a `metric` event that are not curves (the row's epoch already says it).
_NOT_SCALARS = ("epoch_progress",)
_MAX_DEPTH = 3
_MAX_NAMES = 256  # a hostile log naming thousands of metrics gets this many columns, no more


@dataclass
class Row:
    time: float | None
    stage: str | None
    step: int
    epoch: float
    values: dict[str, float] = field(default_factory=dict)


def _flatten(data: Any, prefix: str, out: dict[str, float], depth: int = 0) -> None:
    if isinstance(data, dict):
        if depth >= _MAX_DEPTH:
            return
        for key, value in data.items():
            _flatten(value, f"{prefix}/{key}" if prefix else str(key), out, depth + 1)
    elif isinstance(data, (int, float)) and not isinstance(data, bool) and math.isfinite(data) and prefix:
        if len(out) < _MAX_NAMES:
            out[prefix] = float(data)


def scalars(event: dict) -> dict[str, float]:
    """The numbers one event adds to the run's curves (empty for kinds that have none)."""
    out: dict[str, float] = {}
    data = event.get("data")
    if not isinstance(data, dict):
        return out
    if event.get("kind") == "metric":
        _flatten({k: v for k, v in data.items() if k not in _NOT_SCALARS}, "", out)
    elif event.get("kind") == "eval":
        _flatten(data.get("metrics"), "", out)
    return out


def row_of(event: dict) -> Row | None:
    """The row an event adds, or None."""
    values = scalars(event)
    if not values:
        return None
    return Row(event.get("time"), event.get("stage"), int(event.get("step") or 0),
               float(event.get("epoch") or 0.0), values)


def restart_of(event: dict) -> int | None:
    """The step a resumed session starts again from (a ``run_start`` with ``resumed_from``), else None."""
    if event.get("kind") != "run_start":
        return None
    step = event.get("data", {}).get("resumed_from")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None
    return step


class History:
    """Rows folded from events in order, a resume dropping its stage's rows past the restart."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.names: list[str] = []  # every value name, in the order first seen

    def add(self, event: dict) -> str | None:
        """Fold one event: returns ``"row"`` (a row was appended), ``"restart"`` (rows were dropped) or
        None (nothing changed)."""
        restart = restart_of(event)
        if restart is not None:
            stage = event.get("stage")
            kept = [r for r in self.rows if r.stage != stage or r.step <= restart]
            if len(kept) == len(self.rows):
                return None
            self.rows = kept
            return "restart"
        row = row_of(event)
        if row is None:
            return None
        for name in row.values:
            if name not in self.names:
                self.names.append(name)
        self.rows.append(row)
        return "row"


def history(events: Iterable[dict]) -> History:
    """A whole log's rows (see :class:`History`)."""
    folded = History()
    for event in events:
        folded.add(event)
    return folded


def series(rows: Iterable[Row], name: str) -> list[tuple[int, float, float, str | None]]:
    """``(step, epoch, value, stage)`` of every row that has ``name``, in log order."""
    return [(r.step, r.epoch, r.values[name], r.stage) for r in rows if name in r.values]
