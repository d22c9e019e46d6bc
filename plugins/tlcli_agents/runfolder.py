"""The run folder of an agents run, through the core Run (``tlcli.run``) when it is available.

Until the core Run lands on this branch, a small stand-in with the same surface (``emit``, ``finish``,
``path``) writes the same files: config.json, events.jsonl (run_start, message..., run_end),
metrics.json. It never reuses a non-empty folder unless asked to.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from tlcli.errors import UsageError


def create_run(out: Path | None, overwrite: bool, config: dict):
    try:
        from tlcli.run import Run
    except ImportError:
        return _FolderRun.create(out, overwrite, config)
    return Run.create("agents", out=out, overwrite=overwrite, plugin="agents", config=config)


class _FolderRun:
    def __init__(self, path: Path, config: dict):
        from tlcli.engine.events import EventWriter

        self.path = path
        self.name = path.name
        self.config = config
        self._writer = EventWriter(path / "events.jsonl", path.name)
        self._started = time.monotonic()
        self._writer.emit("run_start", {"command": "agents solve", "plugin": "agents", "model": config.get("llm"),
                                        "config": config, "pid": os.getpid(), "host": socket.gethostname()})

    @classmethod
    def create(cls, out: Path | None, overwrite: bool, config: dict) -> "_FolderRun":
        from tlcli.paths import atomic_write_text, new_run_dir

        path = new_run_dir("agents", out)
        if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not overwrite)):
            raise UsageError(f"--out {path} exists and is not empty; pick a new folder or pass --overwrite")
        path.mkdir(parents=True, exist_ok=True)
        if overwrite:
            (path / "events.jsonl").unlink(missing_ok=True)
        atomic_write_text(path / "config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        return cls(path, config)

    def emit(self, kind: str, data: dict, step: int = 0, epoch: float = 0, stage=None) -> None:
        self._writer.emit(kind, data, step=step, epoch=epoch)

    def finish(self, status: str = "finished", metrics: dict | None = None) -> None:
        from tlcli.output import to_json
        from tlcli.paths import atomic_write_text

        atomic_write_text(self.path / "metrics.json", to_json(metrics or {}) + "\n")
        self._writer.emit("run_end", {"status": status, "wall_s": round(time.monotonic() - self._started, 3),
                                      "steps": (metrics or {}).get("turns"), "error": None,
                                      "best": None, "monitor": None})
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            self._writer.emit("run_end", {"status": status, "error": f"{exc_type.__name__}: {exc}"})
            self._writer.close()
        return False


def read_recording(run_dir: Path) -> tuple[dict, list[dict]]:
    """The config and the events of a finished agents run (for replay)."""
    from tlcli.engine.events import read_events

    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{run_dir} is not an agents run folder (config.json: {error}); "
                         "pass a folder written by 'tlcli agents solve'") from None
    events = list(read_events(run_dir / "events.jsonl"))
    if not any(e.get("kind") == "message" for e in events) or config.get("command") != "agents solve":
        raise UsageError(f"{run_dir} holds no agents transcript; pass a folder written by 'tlcli agents solve'")
    return config, events
