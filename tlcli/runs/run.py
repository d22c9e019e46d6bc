"""The Run: one run folder, set up and finished the same way by every command.

It creates the folder or refuses one that holds something (a user's data is never replaced by accident:
``--overwrite`` replaces only a folder holding tlcli's ``.tlcli-run`` marker, or a pre-marker run that holds
nothing but run files), locks it so two processes cannot interleave their logs (a POSIX record lock held by
the main process alone, so DataLoader workers orphaned by a ``kill -9`` never keep a run from resuming),
writes ``config.json`` (secrets masked), appends
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
import re
import shutil
import socket
import time
import weakref
from pathlib import Path
from typing import Any, Iterator

from tlcli.console.errors import TlcliError, UsageError
from tlcli.runs.events import EventWriter, read_events
from tlcli.runs.paths import (CHECKPOINTS_DIR, CONFIG_FILE, EVENTS_FILE, METRICS_FILE, MODEL_DIR, RUN_MARKER_FILE,
                         RUNS_ROOT, STOP_REQUEST_FILE, atomic_write_text)
from tlcli.console.secrets import redact

LOCK_FILE = ".lock"
ENDED = ("finished", "stopped", "interrupted", "failed")
# Files that make a folder recognisably a run (what --resume accepts).
_RUN_MARKERS = (CONFIG_FILE, EVENTS_FILE)
_MARKER_TEXT = "tlcli run folder: --overwrite may replace it\n"
# What a run folder made before the marker existed may hold (anything else there is the user's).
_LEGACY_ENTRIES = re.compile(r"(config\.json|events\.jsonl|metrics\.json|model|checkpoints|rounds|stop-request|"
                             r"\.lock|seed-\d+|(coop|vprompt)-\d+shot|\.(tmp|old)-model-\d+|\..+\.tmp-\d+)")
# Run folders this process holds the lock of (POSIX record locks do not conflict within one process, and
# closing any descriptor of the lock file would drop ours: see Run._lock).
_HELD: "weakref.WeakValueDictionary[str, Run]" = weakref.WeakValueDictionary()


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
        self._sigterm_before = None  # the SIGTERM handler stop_on_sigterm replaced
        self._emitted = False
        self._ended = False
        self._events = EventWriter(self.path / EVENTS_FILE, run=self.path.name, enabled=writable)
        self._sinks: list[tuple[str, Any]] = []  # (name, sink): --report-to, fed every event written

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
        report_to = (config or {}).get("report_to") or []
        if report_to:  # an unknown sink is refused before the folder is touched
            from tlcli.runs.sinks import check_sink_names

            check_sink_names(report_to)
        replaced = None
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {path}: is a file, not a folder; pass a new folder name")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise UsageError(f"--out {path}: folder exists and is not empty; pass --overwrite to replace "
                                 f"that run, --resume {path} to continue it, or a new --out folder")
            why_not = _not_a_run_of_ours(path)
            if why_not:
                raise UsageError(f"--out {path}: not a tlcli run folder ({why_not}); --overwrite only replaces "
                                 "folders tlcli made. Pass a new --out folder") from None
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
        atomic_write_text(path / RUN_MARKER_FILE, _MARKER_TEXT)
        run.write_config(config or {})
        if report_to:
            try:
                run.report_to(report_to, config)
            except BaseException:
                run.abandon()
                raise
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
            _clean_after_a_kill(path)
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

    def report_to(self, names, config: dict | None = None) -> None:
        """Also hand every event written from now on to the metric sinks ``names`` (``--report-to``; see
        ``tlcli/runs/sinks.py``), replacing those set before. :meth:`create` sets its config's; the
        lifecycle sets a resumed run's. An unknown name is a one-line usage error."""
        from tlcli.runs.sinks import close_quietly, open_sinks

        for _, sink in self._sinks:
            close_quietly(sink)
        self._sinks = []
        if self.writable and names:
            self._sinks = open_sinks(names, self.path, self.config if config is None else config)

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
        line = self._events.emit(kind, redact(data), step, epoch, stage)
        if self._sinks and line is not None:
            self._to_sinks(line)

    def _to_sinks(self, line: str) -> None:
        """The event as written, parsed back (what a reader of events.jsonl gets), to every sink. A sink
        that fails is dropped for the rest of the session, with a warning; the run goes on."""
        from tlcli.runs.events import parse_event_line
        from tlcli.runs.sinks import close_quietly

        event = parse_event_line(line)
        if event is None:
            return
        for name, sink in list(self._sinks):
            try:
                sink.write(event)
            except Exception as error:
                self._sinks.remove((name, sink))
                close_quietly(sink)
                message = f"--report-to {name}: stopped writing metrics ({type(error).__name__}: {error})"
                from tlcli.console.output import warn

                warn(message)
                self.emit("log", {"level": "warning", "message": message}, event["step"], event["epoch"],
                          event["stage"])

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
            from tlcli.console.output import to_json

            atomic_write_text(self.path / METRICS_FILE, to_json(metrics))

    def _metrics_agree(self, status: str, error: str) -> None:
        """A ``metrics.json`` left by an earlier session (a resumed run) must not contradict the run_end just
        written: its status becomes this one."""
        metrics = _read_json(self.path / METRICS_FILE)
        if self.writable and isinstance(metrics, dict) and metrics.get("status") not in (None, status):
            with contextlib.suppress(OSError):
                self.write_metrics({**metrics, "status": status, "error": error})

    def finish(self, status: str = "finished", metrics: dict | None = None, error: str | None = None) -> None:
        """Write ``metrics.json`` (if given), the ``run_end`` event (unless the engine wrote one) and release
        the lock."""
        if metrics is not None:
            self.write_metrics(metrics)
        if not self._ended:
            self.emit("run_end", {"status": status, "error": error})
        self.close()

    def stop_on_sigterm(self) -> None:
        """SIGTERM (``timeout``, systemd, ``kill -- -PGID``) becomes this run's stop request, which a command
        that does not train (``agents solve``) checks between turns: it ends "stopped" with its summary. A
        second SIGTERM interrupts at once (still with a run_end). Undone by :meth:`close`."""
        import signal
        import threading

        if not self.writable or threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum, frame):
            if (self.path / STOP_REQUEST_FILE).exists():
                raise KeyboardInterrupt
            with contextlib.suppress(OSError):
                atomic_write_text(self.path / STOP_REQUEST_FILE, '{"by": "SIGTERM"}')

        self._sigterm_before = signal.signal(signal.SIGTERM, on_sigterm)

    def close(self) -> None:
        sinks, self._sinks = self._sinks, []
        for name, sink in sinks:
            try:
                sink.close()
            except Exception as error:  # the run has ended: say so, do not fail it
                from tlcli.console.output import warn

                warn(f"--report-to {name}: could not finish writing ({type(error).__name__}: {error})")
        if self._sigterm_before is not None:
            import signal

            signal.signal(signal.SIGTERM, self._sigterm_before)
            self._sigterm_before = None
        self._events.close()
        if self._lock_handle is not None:
            with contextlib.suppress(OSError):
                (self.path / LOCK_FILE).unlink()
            self._lock_handle.close()  # closing the descriptor releases the record lock
            self._lock_handle = None
            _HELD.pop(_lock_key(self.path), None)

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
                self._metrics_agree(status, f"{exc_type.__name__}: {exc}")
        finally:  # a full disk must not keep the lock file behind
            self.close()

    # --- locking -----------------------------------------------------------------------------------------

    def _lock(self) -> None:
        """A POSIX record lock on ``.lock``: held by this process only. Child processes (DataLoader workers)
        do not inherit it, so a ``kill -9`` of this process frees the folder at once even while orphaned
        workers live on; the kernel drops it with the process, so the holder named is always alive."""
        import fcntl

        key = _lock_key(self.path)
        if key in _HELD:
            raise UsageError(f"{self.path}: in use by this process; wait for it to end or pass another --out")
        handle = open(self.path / LOCK_FILE, "a+", encoding="utf-8")
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(handle)
            handle.close()
            raise UsageError(f"{self.path}: in use by {holder}; wait for it to end or pass another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._lock_handle = handle
        _HELD[key] = self


def _clean_after_a_kill(path: Path) -> None:
    """What a ``kill -9`` left in a run folder (we hold its lock, so no live writer owns any of it): a model
    export's temporary folders (an old model/ moved aside is put back when model/ is missing), temporary
    files of atomic writes, and a torn last line of events.jsonl, closed so the next event starts a line."""
    for old in sorted(path.glob(f".old-{MODEL_DIR}-*")):
        if not (path / MODEL_DIR).exists():
            with contextlib.suppress(OSError):
                os.replace(old, path / MODEL_DIR)
                continue
        shutil.rmtree(old, ignore_errors=True)
    for leftover in path.glob(f".tmp-{MODEL_DIR}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in path.glob(".*.tmp-*"):
        with contextlib.suppress(OSError):
            leftover.unlink()
    events = path / EVENTS_FILE
    try:
        with open(events, "rb+") as handle:
            if handle.seek(0, os.SEEK_END) and (handle.seek(-1, os.SEEK_END), handle.read(1))[1] != b"\n":
                handle.write(b"\n")
    except OSError:
        pass


def _lock_key(path: Path) -> str:
    return os.path.realpath(path)


def _holder(handle) -> str:
    """Who holds the lock, as its file says; a pid on this host that is gone (the file is rewritten only
    after the lock is taken) is not named."""
    handle.seek(0)
    text = handle.read(200).strip()
    found = re.fullmatch(r"pid (\d+) on (.+)", text)
    if not found:
        return "another process"
    if found.group(2) == socket.gethostname():
        try:
            os.kill(int(found.group(1)), 0)
        except ProcessLookupError:
            return "another process"
        except (OSError, OverflowError):
            pass  # alive under another user (EPERM)
    return text


def _refuse_if_locked(path: Path) -> None:
    import fcntl

    if _lock_key(path) in _HELD:
        raise UsageError(f"{path}: in use by this process; it cannot be overwritten while it runs")
    lock = path / LOCK_FILE
    if not lock.is_file():
        return
    with open(lock, "a+", encoding="utf-8") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"{path}: in use by {_holder(handle)}; it cannot be overwritten while it runs") from None
        fcntl.lockf(handle, fcntl.LOCK_UN)


def _not_a_run_of_ours(path: Path) -> str | None:
    """Why ``path`` is not a run folder that tlcli made (None when it is one, and may be replaced).

    A run holds tlcli's marker file (written by :meth:`Run.create`) beside a ``config.json`` object and, once
    started, an ``events.jsonl``. A run made before the marker existed is accepted when its ``events.jsonl``
    holds a tlcli ``run_start`` event and the folder holds only the files a run writes."""
    marker, config, events = path / RUN_MARKER_FILE, path / CONFIG_FILE, path / EVENTS_FILE
    for file in (marker, config, events):
        if file.is_symlink() or (file.exists() and not file.is_file()):
            return f"{file.name} is not a plain file"
    if not isinstance(_read_json(config), dict):
        return f"no {CONFIG_FILE} written by tlcli"
    if marker.exists():
        try:
            if marker.read_text(encoding="utf-8", errors="replace")[:200] == _MARKER_TEXT:
                return None
        except OSError:
            pass
        return f"{RUN_MARKER_FILE} was not written by tlcli"
    # A run from before the marker: the events say so, and nothing else lives there.
    if not any(event["kind"] == "run_start" for _, event in zip(range(1000), read_events(events))):
        return f"no tlcli marker and no run_start in {EVENTS_FILE}"
    foreign = sorted(entry.name for entry in path.iterdir() if not _LEGACY_ENTRIES.fullmatch(entry.name))
    if foreign:
        return f"it also holds {foreign[0]!r}, which no run writes"
    return None


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
