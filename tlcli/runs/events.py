"""The event log: one JSON object per line in ``runs/<run>/events.jsonl``, appended and flushed.

This file is the contract between the engine (writer) and everything that watches a run (``tlcli
monitor``, scripts). It imports nothing heavy so that readers can use it.

Every line::

    {"time": 1732350000.12, "run": "finetune-20261123-101500", "kind": "metric",
     "step": 40, "epoch": 1, "stage": null, "data": {...}}

``stage`` names the part of a multi-stage run (``pretrain``, ``round-2``, ``seed-3``) or is null.

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
warning     {"message"}  (also written as log lines with level "warning" by older runs)
index       an index build's progress, by "stage":
            {"stage": "hashed", "files", "changed", "removed"}   files found and hashed
            {"stage": "chunked", "files", "chunks"}               files read and cut into chunks to embed
            {"stage": "embedding", "files_done", "files", "chunks_done", "chunks", "chunks_per_s",
             "eta_s": seconds | null}   at least once a second while embedding, and at the end
message     {"agent", "role", "content", "tool_calls", "tool_name", "usage"}   an agent's turn
run_end     {"status": "finished" | "stopped" | "interrupted" | "failed", "best": value | null,
             "monitor": name, "wall_s", "steps", "error": str | null}

Plugins may add their own kinds; readers must ignore kinds they don't know and tolerate a torn last line.
Readers go through :func:`parse_event_line`, which never raises and normalises the envelope (a hostile or
corrupt log can carry ``"step": Infinity`` or a 4 MB line; the dashboard must survive both).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

KINDS = ("run_start", "metric", "eval", "layers", "checkpoint", "log", "warning", "index", "message", "run_end")
# Longer lines are not events (a reader skips them rather than hold megabytes per line).
MAX_LINE_BYTES = 1024 * 1024
RUN_STATUSES = ("running", "finished", "stopped", "interrupted", "failed")


class EventWriter:
    """Appends event lines; each line is written with one write() and flushed so readers never see
    half of one unless the process dies mid-write (readers skip a torn last line)."""

    def __init__(self, path: Path, run: str, enabled: bool = True):
        self.path = Path(path)
        self.run = run
        self.enabled = enabled
        self._handle = None

    def emit(self, kind: str, data: dict[str, Any], step: int = 0, epoch: float = 0,
             stage: str | None = None) -> str | None:
        """Append one event; returns the line written (without its newline), None when disabled."""
        if not self.enabled:
            return None
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        from tlcli.console.output import to_json

        record = {"time": round(time.time(), 3), "run": self.run, "kind": kind, "step": step,
                  "epoch": epoch, "stage": stage, "data": data}
        line = to_json(record)
        try:
            self._handle.write(line + "\n")
            self._handle.flush()
        except OSError as error:  # a full disk: say which file, for the one-line error at the top
            if error.filename is not None:
                raise
            raise OSError(error.errno, error.strerror, str(self.path)) from None
        return line

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete, valid line of an event log; a torn, corrupt or oversized line is skipped.

    Lines are read at most ``MAX_LINE_BYTES`` at a time, so a hostile multi-gigabyte line costs no memory."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        while True:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line.endswith(b"\n"):
                if len(line) <= MAX_LINE_BYTES:
                    return  # the end, or a torn last line: the writer is mid-write or died
                while not line.endswith(b"\n"):  # an oversized line: skip to its end
                    line = handle.readline(MAX_LINE_BYTES)
                    if not line:
                        return
                continue
            record = parse_event_line(line)
            if record is not None:
                yield record


def _number(value: Any, default: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    if not (low <= value <= high):  # NaN fails both comparisons
        return default
    return value


def parse_event_line(line: str | bytes) -> dict[str, Any] | None:
    """One event with a well-typed envelope, or None for a blank, torn, corrupt, oversized or non-event line.

    Never raises. ``data`` is always a dict, ``step`` an int >= 0, ``epoch`` a finite float >= 0, ``time``
    a finite float or None, ``run``/``stage`` strings or None: readers can use them without checks.
    """
    if len(line) > MAX_LINE_BYTES:
        return None
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        return None
    data = record.get("data")
    when = _number(record.get("time"), None, 0, 1e11)
    record["time"] = float(when) if when is not None else None
    record["step"] = int(_number(record.get("step"), 0, 0, 1e15))
    record["epoch"] = float(_number(record.get("epoch"), 0.0, 0, 1e9))
    record["data"] = data if isinstance(data, dict) else {}
    for key in ("run", "stage"):
        if not isinstance(record.get(key), str):
            record[key] = None
    return record


def writer_alive(pid: int | None) -> bool:
    """Whether the process that writes a run still exists (same machine only)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
        return False  # 0, -1 and absurd values name no process of ours (os.kill(-1, 0) means "all")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
