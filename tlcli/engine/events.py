"""The event log: one JSON object per line in ``runs/<run>/events.jsonl``, appended and flushed.

This file is the contract between the engine (writer) and everything that watches a run (``tlcli
monitor``, scripts). It imports nothing heavy so that readers can use it.

Every line::

    {"time": 1732350000.12, "run": "finetune-20261123-101500", "kind": "metric",
     "step": 40, "epoch": 1, "data": {...}}

``time`` is Unix seconds; ``step`` counts optimizer steps done so far; ``epoch`` is 0-based and may be
fractional in ``metric`` lines (``epoch_progress``). Kinds and their ``data``:

run_start   {"command", "plugin", "model", "device", "precision", "config": {...}, "pid", "host",
             "params": {"trainable", "total"}, "blocks": [{"name", "params", "trainable"}],
             "total_steps", "epochs", "train_samples", "val_samples", "resumed_from": step | null}
metric      {"loss", "lr": {group_name: lr}, "samples_per_s", "data_wait", "epoch_progress",
             "memory": {"rss_mb", "gpu_mb"}}
eval        {"metrics": {"val_loss", "val_accuracy", ...}, "monitor": name, "best": value,
             "is_best": bool}
layers      {"blocks": [{"name", "params", "trainable"}], "reason": "unfreeze", "unfrozen": [name]}
checkpoint  {"path", "kind": "last" | "best" | "interrupt"}
log         {"level": "info" | "warning" | "error", "message"}
run_end     {"status": "finished" | "stopped" | "interrupted" | "failed", "best": value | null,
             "monitor": name, "wall_s", "steps", "error": str | null}

Plugins may add their own kinds (an agent's ``message`` lines); readers must ignore kinds they don't
know and tolerate a torn last line.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

KINDS = ("run_start", "metric", "eval", "layers", "checkpoint", "log", "run_end")
RUN_STATUSES = ("running", "finished", "stopped", "interrupted", "failed")


class EventWriter:
    """Appends event lines; each line is written with one write() and flushed so readers never see
    half of one unless the process dies mid-write (readers skip a torn last line)."""

    def __init__(self, path: Path, run: str, enabled: bool = True):
        self.path = Path(path)
        self.run = run
        self.enabled = enabled
        self._handle = None

    def emit(self, kind: str, data: dict[str, Any], step: int = 0, epoch: float = 0) -> None:
        if not self.enabled:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        from tlcli.output import to_json

        record = {"time": round(time.time(), 3), "run": self.run, "kind": kind, "step": step,
                  "epoch": epoch, "data": data}
        self._handle.write(to_json(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete, valid line of an event log; a torn or corrupt line is skipped."""
    try:
        handle = open(path, "r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.endswith("\n"):
                return  # torn last line: the writer is mid-write or died
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "kind" in record:
                yield record


def writer_alive(pid: int | None) -> bool:
    """Whether the process that writes a run still exists (same machine only)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
