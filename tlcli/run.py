"""The Run: one run folder, set up and finished the same way by every command.

It creates the folder or refuses one that holds something (a user's data is never replaced by accident),
locks it so two processes cannot interleave their logs, writes ``config.json`` (secrets masked), appends
events, writes ``model/`` atomically and ``metrics.json`` as valid JSON, and removes a folder whose command
failed before its first event (so ``tlcli monitor`` never shows a run "waiting" for ever).

    with Run.create("probe", out, overwrite=overwrite, plugin="clip", config=cfg) as run:
        run.emit("run_start", {...})
        with run.model_writer() as tmp:
            ...  # write files into tmp; renamed to run.path / "model" when the block ends
        run.finish("finished", metrics)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from tlcli.errors import TlcliError, UsageError
from tlcli.events import EventWriter, read_events
from tlcli.paths import (CHECKPOINTS_DIR, CONFIG_FILE, EVENTS_FILE, METRICS_FILE, MODEL_DIR, RUNS_ROOT,
                         STOP_REQUEST_FILE, atomic_write_text)
from tlcli.secrets import redact

LOCK_FILE = ".lock"
ENDED = ("finished", "stopped", "interrupted", "failed")
# Files that make a folder recognisably a tlcli run (and so something --overwrite may replace).
_RUN_MARKERS = (CONFIG_FILE, EVENTS_FILE)


class RunFinished(TlcliError):
    """``--resume`` of a run that already finished: said plainly, nothing changed, exit 0."""

    exit_code = 0


def default_run_dir(command: str) -> Path:
    """``runs/<command>-<YYYYmmdd-HHMMSS>``, suffixed ``-2``, ``-3`` when taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = RUNS_ROOT / f"{command}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def is_main_process() -> bool:
    """Only rank 0 of a torchrun job writes the run folder."""
    return int(os.environ.get("RANK", "0")) == 0


class Run:
    """A run folder in use by this process. Build one with :meth:`create`, :meth:`resume` or :meth:`open`."""

    def __init__(self, path: Path, command: str = "", plugin: str = "", *, writable: bool = False,
                 created: bool = False, replaced: Path | None = None):
        self.path = Path(path)
        self.command, self.plugin = command, plugin
        self.writable = writable
        self.resumed = False             # opened by --resume: the job continues from its checkpoint
        self._created = created          # this process made the folder (so it may remove it again)
        self._replaced = replaced        # an old run moved aside by --overwrite, deleted once we start
        self._lock_handle = None
        self._emitted = False
        self._ended = False
        self._events = EventWriter(self.path / EVENTS_FILE, run=self.path.name, enabled=writable)

    # --- opening -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, command: str, out: Path | str | None = None, *, overwrite: bool = False,
               config: dict | None = None, plugin: str = "") -> "Run":
        """A new run in ``out`` (default ``runs/<command>-<time>``).

        An existing non-empty ``out`` is refused unless ``overwrite``; even then only a tlcli run folder is
        replaced, and only once the new run has started (its first event): a usage error found before that
        leaves the old run as it was. Other ranks of a torchrun job get a Run that writes nothing.
        """
        path = Path(out) if out is not None else default_run_dir(command)
        if not is_main_process():
            return cls(path, command, plugin, writable=False)
        replaced = None
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {path}: is a file, not a folder; pass a new folder name")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise UsageError(f"--out {path}: folder exists and is not empty; pass --overwrite to replace "
                                 f"that run, --resume {path} to continue it, or a new --out folder")
            if not any((path / marker).exists() for marker in _RUN_MARKERS):
                raise UsageError(f"--out {path}: not a tlcli run folder (no {CONFIG_FILE} or {EVENTS_FILE}); "
                                 "--overwrite only replaces runs. Pass a new --out folder")
            _refuse_if_locked(path)
            replaced = path.with_name(f".{path.name}.replaced-{os.getpid()}")
            os.replace(path, replaced)
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            if replaced is not None:
                os.replace(replaced, path)
            raise UsageError(f"--out {path}: cannot create the run folder ({error.strerror}); "
                             "pass a writable --out folder") from None
        run = cls(path, command, plugin, writable=True, created=created or replaced is not None, replaced=replaced)
        run._lock()
        run.write_config(config or {})
        return run

    @classmethod
    def resume(cls, path: Path | str, command: str = "", plugin: str = "") -> "Run":
        """An existing run, locked for continuing. A finished run raises :class:`RunFinished`."""
        path = Path(path)
        if not any((path / marker).is_file() for marker in _RUN_MARKERS):
            raise UsageError(f"--resume {path}: not a run folder (no {CONFIG_FILE}); pass the folder a run wrote")
        writable = is_main_process()
        run = cls(path, command, plugin, writable=writable)
        run.resumed = True
        if run.status == "finished":
            raise RunFinished(f"{path} already finished; nothing to resume (its model and metrics are unchanged)")
        if writable:
            run._lock()
            run._emitted = True  # an old run's folder is never removed by a failing resume
            for leftover in path.glob(f"{CHECKPOINTS_DIR}/.tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)  # a crash mid-checkpoint
            (path / STOP_REQUEST_FILE).unlink(missing_ok=True)
        return run

    @classmethod
    def open(cls, path: Path | str) -> "Run":
        """A finished or running run, read-only (predict, evaluate, monitor)."""
        path = Path(path)
        if not path.is_dir():
            raise UsageError(f"{path}: no such run folder")
        return cls(path, writable=False)

    # --- what a run holds ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def config(self) -> dict:
        return _read_json(self.path / CONFIG_FILE) or {}

    @property
    def metrics(self) -> dict:
        return _read_json(self.path / METRICS_FILE) or {}

    @property
    def status(self) -> str:
        """The status of the last ``run_end`` event, else ``running`` (or ``new`` before any event). The end
        of one stage of a multi-stage run (a pseudo-label round) is not the end of the run."""
        status = "new"
        for event in read_events(self.path / EVENTS_FILE):
            if event["kind"] == "run_end" and not event.get("stage"):
                status = event["data"].get("status") or "failed"
            elif status in ENDED or status == "new":
                status = "running"
        return status

    # --- writing ---------------------------------------------------------------------------------------

    def write_config(self, config: dict) -> None:
        """``config.json``: every option, resolved; secrets masked."""
        if self.writable:
            atomic_write_text(self.path / CONFIG_FILE, json.dumps(redact(_plain(config)), indent=1,
                                                                  ensure_ascii=False, default=str))

    def emit(self, kind: str, data: dict[str, Any], step: int = 0, epoch: float = 0,
             stage: str | None = None) -> None:
        """Append one event. The first one marks the run as started (see :meth:`create`)."""
        if not self.writable:
            return
        if not self._emitted:
            self._emitted = True
            if self._replaced is not None:
                shutil.rmtree(self._replaced, ignore_errors=True)
                self._replaced = None
        if kind == "run_end" and stage is None:
            self._ended = True
        self._events.emit(kind, redact(data), step, epoch, stage)

    def start(self, data: dict[str, Any] | None = None, stage: str | None = None) -> None:
        """The ``run_start`` event of a command that does not train (probe, index, agents)."""
        self.emit("run_start", {"command": self.command, "plugin": self.plugin, "pid": os.getpid(),
                                "host": socket.gethostname(), "config": self.config, **(data or {})}, stage=stage)

    def log(self, level: str, message: str, step: int = 0, epoch: float = 0) -> None:
        self.emit("log", {"level": level, "message": message}, step, epoch)

    @contextlib.contextmanager
    def model_writer(self) -> Iterator[Path]:
        """A temporary folder inside the run; when the block ends without error it replaces ``model/``
        in one rename (a reader sees the old model or the new one, never half of one)."""
        tmp = self.path / f".tmp-{MODEL_DIR}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not self.writable:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = self.path / f".old-{MODEL_DIR}-{os.getpid()}"
        if self.model_dir.exists():
            os.replace(self.model_dir, old)
        os.replace(tmp, self.model_dir)
        shutil.rmtree(old, ignore_errors=True)

    def write_metrics(self, metrics: dict) -> None:
        if self.writable:
            from tlcli.output import to_json

            atomic_write_text(self.path / METRICS_FILE, to_json(metrics))

    def finish(self, status: str = "finished", metrics: dict | None = None, error: str | None = None) -> None:
        """Write ``metrics.json`` (if given), the ``run_end`` event (unless the engine wrote one) and release
        the lock."""
        if metrics is not None:
            self.write_metrics(metrics)
        if not self._ended:
            self.emit("run_end", {"status": status, "error": error})
        self.close()

    def close(self) -> None:
        self._events.close()
        if self._lock_handle is not None:
            with contextlib.suppress(OSError):
                (self.path / LOCK_FILE).unlink()
            self._lock_handle.close()
            self._lock_handle = None

    def abandon(self) -> None:
        """The command failed before the run started: remove what this process made, put back a replaced run."""
        self.close()
        if self._emitted or not self.writable:
            return
        if self._created:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._replaced is not None:
            os.replace(self._replaced, self.path)
            self._replaced = None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._ended and self._emitted:
                self.finish("finished")
            self.close()
            return
        if not self._emitted:
            self.abandon()
            return
        try:
            if not self._ended:
                status = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
                self.emit("run_end", {"status": status, "error": f"{exc_type.__name__}: {exc}"})
        finally:  # a full disk must not keep the lock file behind
            self.close()

    # --- locking -----------------------------------------------------------------------------------------

    def _lock(self) -> None:
        import fcntl

        handle = open(self.path / LOCK_FILE, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(f"{self.path}: in use by {holder}; wait for it to end or pass another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._lock_handle = handle


def _refuse_if_locked(path: Path) -> None:
    import fcntl

    lock = path / LOCK_FILE
    if not lock.exists():
        return
    with open(lock, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            raise UsageError(f"{path}: in use by {handle.read().strip() or 'another process'}; "
                             "it cannot be overwritten while it runs") from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _plain(value: Any) -> Any:
    """Paths and other simple objects as JSON-friendly values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
