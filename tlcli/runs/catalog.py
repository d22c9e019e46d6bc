"""Finding run folders and saying what each one is, from its files alone (``tlcli runs``, ``tlcli plot``).

A folder is a tlcli run when it holds tlcli's marker (``.tlcli-run``, written by ``Run.create``) or an
``events.jsonl`` (runs made before the marker). A ``config.json`` alone is not enough: a Hugging Face model
folder has one too. Runs are found recursively (a ``--seeds`` run holds one run per seed), never inside a
run's ``checkpoints/``, ``model/`` or ``tensorboard/``, never through symbolic links.

A run's status: its last ``run_end`` (of the whole run, not of a stage); without one, ``running`` while a
process holds its lock, else ``interrupted`` (killed). Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tlcli.runs.events import read_events
from tlcli.runs.paths import CHECKPOINTS_DIR, CONFIG_FILE, EVENTS_FILE, METRICS_FILE, MODEL_DIR, RUN_MARKER_FILE

LOCK_FILE = ".lock"
MAX_DEPTH = 8
# Folders inside a run that hold no runs (and may hold thousands of files).
_NOT_RUNS = {CHECKPOINTS_DIR, MODEL_DIR, "tensorboard", "rounds", "__pycache__"}
STATUSES = ("running", "finished", "stopped", "interrupted", "failed", "new")


def is_run_folder(path: Path) -> bool:
    try:
        return (path / RUN_MARKER_FILE).is_file() or (path / EVENTS_FILE).is_file()
    except OSError:  # a folder we may not look into
        return False


def find_runs(root: Path) -> list[Path]:
    """Every run folder at or below ``root`` (``root`` itself included when it is one), in path order."""
    root = Path(root)
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if is_run_folder(folder):
            found.append(folder)
        if depth >= MAX_DEPTH:
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False) and entry.name not in _NOT_RUNS \
                        and not entry.name.startswith("."):
                    walk(Path(entry.path), depth + 1)
            except OSError:
                continue

    walk(root, 0)
    return found


def lock_holder(path: Path) -> str | None:
    """Who holds the run's lock (``pid N on HOST``), or None when no process does. Never creates the lock
    file, and never drops a lock this process holds (POSIX locks are per process: closing any descriptor
    of the file would release ours)."""
    import fcntl

    from tlcli.runs import run as run_module

    if os.path.realpath(path) in run_module._HELD:
        return f"pid {os.getpid()} (this process)"
    lock = Path(path) / LOCK_FILE
    try:
        handle = open(lock, "rb")
    except OSError:
        return None
    with handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = handle.read(200).decode("utf-8", "replace").strip()
            return text if re.fullmatch(r"pid \d+ on .+", text) else "another process"
        fcntl.lockf(handle, fcntl.LOCK_UN)
    return None


@dataclass
class RunInfo:
    """What one run folder says of itself."""

    path: Path
    name: str
    command: str | None = None
    plugin: str | None = None
    status: str = "new"
    model: str | None = None
    started: float | None = None
    last_time: float | None = None
    wall_s: float | None = None
    steps: int | None = None
    best: dict | None = None
    monitor: str | None = None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)  # metrics.json
    holder: str | None = None  # who holds the lock, when a process does

    @property
    def metrics(self) -> dict:
        found = self.summary.get("metrics")
        return found if isinstance(found, dict) else {}

    def record(self) -> dict:
        """One JSON record (``tlcli runs --json``)."""
        return {"name": self.name, "path": str(self.path), "command": self.command, "plugin": self.plugin,
                "status": self.status, "best": self.best, "steps": self.steps,
                "started": iso_time(self.started), "wall_s": self.wall_s, "model": self.model}


def iso_time(when: float | None) -> str | None:
    if when is None:
        return None
    import datetime

    return datetime.datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read(64 * 2**20))
    except (OSError, ValueError, RecursionError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def read_run(path: Path, name: str | None = None, events: list[dict] | None = None) -> RunInfo:
    """A run folder's :class:`RunInfo`: from its first ``run_start``, its last ``run_end`` and evaluation,
    its config.json and metrics.json. ``events``: the log, when the caller has read it already."""
    path = Path(path)
    info = RunInfo(path=path, name=name or path.name)
    config = _read_json(path / CONFIG_FILE)
    info.config = config if isinstance(config, dict) else {}
    summary = _read_json(path / METRICS_FILE)
    info.summary = summary if isinstance(summary, dict) else {}
    ended = None
    eval_best = None
    status = "new"
    for event in (read_events(path / EVENTS_FILE) if events is None else events):
        kind, data = event["kind"], event["data"]
        when = event["time"]
        if when is not None:
            info.started = when if info.started is None else info.started
            info.last_time = when
        info.steps = max(info.steps or 0, event["step"]) if kind in ("metric", "eval", "run_end") else info.steps
        if kind == "run_start" and info.command is None:
            info.command, info.plugin = _text(data.get("command")), _text(data.get("plugin"))
            info.model = _text(data.get("model"))
        if kind == "eval":
            monitor = _text(data.get("monitor"))
            if monitor is not None and _number(data.get("best")) is not None:
                eval_best = {"metric": monitor, "value": _number(data.get("best")),
                             "step": event["step"] if data.get("is_best") else (eval_best or {}).get("step")}
        if kind == "run_end" and not event["stage"]:
            ended = data
            status = _text(data.get("status")) or "failed"
        elif status in ("finished", "stopped", "interrupted", "failed", "new"):
            status = "running"  # an event after the end: a resumed session
    info.model = info.model or _text(info.config.get("model")) or _text(info.summary.get("model"))
    info.command = info.command or _text(info.summary.get("command"))
    info.holder = lock_holder(path)
    if status == "running" and info.holder is None:
        status = "interrupted"  # no run_end and no process: killed
    elif status != "running" and info.holder is not None:
        status = "running"  # resumed, not yet past its first event
    info.status = status if status in STATUSES else "failed"
    best = info.summary.get("best")
    if isinstance(best, dict) and _text(best.get("metric")) and _number(best.get("value")) is not None:
        info.best = {"metric": best["metric"], "value": _number(best["value"]), "step": best.get("step")}
    elif _text(info.summary.get("metric")) and _number(info.summary.get("mean")) is not None:  # --seeds
        info.best = {"metric": f"{info.summary['metric']} (mean of seeds)", "value": _number(info.summary["mean"]),
                     "step": None}
    else:
        info.best = eval_best
    if info.best is not None:
        info.monitor = info.best["metric"]
    for source in (ended or {}, info.summary):
        if info.wall_s is None and _number(source.get("wall_s")) is not None:
            info.wall_s = round(_number(source["wall_s"]), 2)
    if info.wall_s is None and info.started is not None and info.last_time is not None:
        info.wall_s = round(info.last_time - info.started, 2)
    if _number(info.summary.get("steps")) is not None:
        info.steps = int(info.summary["steps"])
    return info


def display_name(path: Path, root: Path) -> str:
    """A run's name as listed: its path below ``root`` (``finetune-x/seed-1``), or its folder name."""
    try:
        relative = Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return Path(path).name
    text = relative.as_posix()
    return Path(path).resolve().name if text == "." else text


def list_runs(root: Path) -> Iterator[RunInfo]:
    for path in find_runs(root):
        yield read_run(path, display_name(path, root))


def run_folder(path: str | Path, flag: str = "RUN") -> Path:
    """``path`` checked to be a run folder (one-line usage error otherwise)."""
    from tlcli.console.errors import UsageError

    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path}: no such run folder; `tlcli runs` lists the runs under runs/")
    if not is_run_folder(path):
        raise UsageError(f"{path}: not a tlcli run folder (no {EVENTS_FILE} or {RUN_MARKER_FILE}); "
                         "`tlcli runs` lists the runs under runs/")
    return path


@contextlib.contextmanager
def locked_for_removal(path: Path):
    """Hold the run's lock while it is removed, so no ``--resume`` can start in it meanwhile; a run a process
    holds raises ``BlockingIOError`` naming it."""
    import fcntl

    from tlcli.runs import run as run_module

    if os.path.realpath(path) in run_module._HELD:
        raise BlockingIOError(f"pid {os.getpid()} (this process)")
    handle = open(Path(path) / LOCK_FILE, "a+", encoding="utf-8")
    try:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            raise BlockingIOError(handle.read(200).strip() or "another process") from None
        yield
    finally:
        handle.close()
