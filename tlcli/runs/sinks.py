"""Metric sinks: where a run's events also go as they are written (``--report-to csv,tensorboard``).

A sink is any object with ``write(event)`` and ``close()`` (see :class:`tlcli.plugin.MetricSink`); the Run
hands it every event it writes, as ``events.jsonl`` holds it (the written line parsed back), so what a sink
makes live equals what ``tlcli runs export`` makes from the log afterwards. Built in:

- ``csv``: ``RUN/metrics.csv``, one row per metric or eval event: ``time,stage,step,epoch`` then one
  column per value (``loss``, ``lr/<group>``, ``samples_per_s``, ``val_accuracy``, ...; see
  :mod:`tlcli.runs.scalars`). Appended line by line; rewritten (atomically) when a new column appears or
  a resumed run drops the steps it trains again.
- ``tensorboard``: ``RUN/tensorboard/`` event files, the same values as scalars (a stage of a multi-stage
  run in a sub-folder of its own, which TensorBoard shows as a run); a resume writes TensorBoard's
  restart marker, so the steps trained again replace the old ones there too.

Plugins add more (Weights & Biases, MLflow) through ``Plugin.metric_sinks``: a name mapped to
``"module:factory"``, ``factory(run_dir: Path, config: dict) -> sink``. Nothing here imports torch.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from tlcli.console.errors import UsageError
from tlcli.runs.paths import EVENTS_FILE, atomic_write_text
from tlcli.runs.scalars import History, restart_of, row_of

CSV_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
CSV_HEAD = ("time", "stage", "step", "epoch")
# TensorBoard's own writer flushes every 120 s; a live sink flushes each event itself (a few hundred a run).
FLUSH_SECS = 10


# --- the built-in sinks -------------------------------------------------------------------------------------

def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class CsvSink:
    """``metrics.csv``: one row per metric or eval event (see the module docstring). Created with the first
    row; ``events`` (a resumed run's log so far) are folded first, so the file always covers the whole run."""

    def __init__(self, path: Path, events: Iterable[dict] = ()):
        self.path = Path(path)
        self.history = History()
        for event in events:
            self.history.add(event)
        self._columns: list[str] = []
        self._handle = None
        self._stale = bool(self.history.rows)  # the file must be (re)written before the next append

    def write(self, event: dict) -> None:
        change = self.history.add(event)
        if change is None:
            return
        if change == "restart" or self._stale or self.history.names != self._columns:
            self._rewrite()
        else:
            self._append(self.history.rows[-1])

    def _line(self, row) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(
            [_number(row.time), row.stage or "", row.step, _number(row.epoch)]
            + [_number(row.values.get(name)) for name in self._columns])
        return buffer.getvalue()

    def _rewrite(self) -> None:
        self._close_handle()
        self._columns = list(self.history.names)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([*CSV_HEAD, *self._columns])
        text = buffer.getvalue() + "".join(self._line(row) for row in self.history.rows)
        atomic_write_text(self.path, text)
        self._stale = False

    def _append(self, row) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8", newline="")
        self._handle.write(self._line(row))
        self._handle.flush()

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        if self._stale:  # folded a log but saw no new event: the file still says what the log says
            self._rewrite()
        self._close_handle()


def _safe_folder_name(stage: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stage)[:100]
    return name if name.strip(".") else "_"


class TensorBoardSink:
    """TensorBoard event files in ``logdir`` (a stage's in ``logdir/<stage>/``), written with TensorBoard's
    own writer; each value a scalar (``simple_value``) at the event's step and wall time."""

    def __init__(self, logdir: Path, events: Iterable[dict] = ()):
        self.logdir = Path(logdir)
        self._writers: dict[str | None, Any] = {}
        self._live = False  # flush each event only once the log so far is written
        for event in events:
            self.write(event)
        self._live = True

    def _writer(self, stage: str | None):
        writer = self._writers.get(stage)
        if writer is None:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            folder = self.logdir / _safe_folder_name(stage) if stage else self.logdir
            writer = self._writers[stage] = EventFileWriter(str(folder), flush_secs=FLUSH_SECS)
        return writer

    def write(self, event: dict) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        stage, when = event.get("stage"), event.get("time")
        restart = restart_of(event)
        if restart is not None:
            # TensorBoard's restart marker: readers drop this stage's values at steps >= restart + 1.
            self._writer(stage).add_event(event_pb2.Event(
                wall_time=when or 0.0, step=restart + 1,
                session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
        row = row_of(event)
        if row is not None:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=name, simple_value=value)
                                                 for name, value in row.values.items()])
            self._writer(stage).add_event(event_pb2.Event(wall_time=when or 0.0, step=row.step, summary=summary))
        if (row is not None or restart is not None) and self._live:
            # on disk before the next event, as events.jsonl is: a kill -9 loses no more here than there
            self._writers[stage].flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _log(run_dir: Path) -> list[dict]:
    from tlcli.runs.events import read_events

    return list(read_events(Path(run_dir) / EVENTS_FILE))


def csv_sink(run_dir: Path, config: dict) -> CsvSink:
    """``--report-to csv``: ``RUN/metrics.csv``, covering the log so far (a resumed run's earlier sessions)."""
    return CsvSink(Path(run_dir) / CSV_FILE, _log(run_dir))


def tensorboard_sink(run_dir: Path, config: dict) -> TensorBoardSink:
    """``--report-to tensorboard``: ``RUN/tensorboard/``. A resumed run that wrote none before gets its
    earlier sessions written first; one that did appends a new event file (TensorBoard reads them in order)."""
    logdir = Path(run_dir) / TENSORBOARD_DIR
    earlier = [] if logdir.is_dir() else _log(run_dir)
    return TensorBoardSink(logdir, earlier)


BUILT_IN: dict[str, Callable[[Path, dict], Any]] = {"csv": csv_sink, "tensorboard": tensorboard_sink}


# --- finding sinks by name ------------------------------------------------------------------------------------

def sink_names() -> list[str]:
    """Every name ``--report-to`` accepts: the built-in sinks, then the installed plugins'."""
    from tlcli.registry import load_plugins

    names = list(BUILT_IN)
    for loaded in load_plugins().loaded:
        names += [name for name in loaded.plugin.metric_sinks if name not in names]
    return names


def sink_factory(name: str, flag: str = "--report-to") -> Callable[[Path, dict], Any]:
    """The factory of sink ``name``: a built-in one, else the first plugin's that declares it. An unknown
    name (or a plugin's that cannot be imported) is a one-line usage error naming the choices."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    from tlcli.plugin import resolve_target
    from tlcli.registry import load_plugins

    target = load_plugins().metric_sink_for(name)
    if target is None:
        raise UsageError(f"{flag} {name}: not a metrics sink; choose from {', '.join(sink_names())} "
                         "(a plugin may add others, such as wandb or mlflow)")
    try:
        return resolve_target(target)
    except Exception as error:
        raise UsageError(f"{flag} {name}: the plugin's sink {target} cannot be loaded "
                         f"({type(error).__name__}: {error}); see `tlcli plugins`") from None


def check_sink_names(names: Iterable[str]) -> list[str]:
    """``names`` without repeats, each one known (else the one-line usage error of :func:`sink_factory`)."""
    unique = list(dict.fromkeys(names))
    for name in unique:
        sink_factory(name)
    return unique


def open_sinks(names: Iterable[str], run_dir: Path, config: dict) -> list[tuple[str, Any]]:
    """``(name, sink)`` for each of ``names``, made for the run in ``run_dir``. A factory that fails is a
    one-line usage error; the sinks made before it are closed."""
    opened: list[tuple[str, Any]] = []
    try:
        for name in check_sink_names(names):
            try:
                opened.append((name, sink_factory(name)(Path(run_dir), dict(config or {}))))
            except UsageError:
                raise
            except Exception as error:
                raise UsageError(f"--report-to {name}: cannot start ({type(error).__name__}: {error})") from None
    except BaseException:
        for _, sink in opened:
            close_quietly(sink)
        raise
    return opened


def close_quietly(sink: Any) -> None:
    try:
        sink.close()
    except Exception:  # a sink that fails to close must not hide why the run ended
        pass


def replay(events: Iterable[dict], sink: Any) -> int:
    """Write ``events`` (a whole log) into ``sink`` and close it; returns how many rows they held."""
    rows = 0
    try:
        for event in events:
            if row_of(event) is not None:
                rows += 1
            sink.write(event)
    finally:
        sink.close()
    return rows
