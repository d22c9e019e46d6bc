"""The Report: the output contract of every command, as one object the core makes and hands to the job.

- ``record(dict)``: one JSON line with ``--json``; nothing otherwise (people get ``table``/``text``).
- ``table(title, columns, rows)`` / ``text(str)`` / ``drawing(str)``: data for people on stdout; nothing with
  ``--json``.
  Text from models and files is shown with terminal controls escaped on a terminal (an OSC 52 clipboard
  write or a colour code in a model's reply is printed as ``\\x1b]52;...``, never run).
- ``info`` / ``warn`` / ``progress``: diagnostics on stderr (``--quiet`` silences info and progress).
- ``summary(dict)``: the core calls it once, after the job: always the last ``--json`` line, one schema for
  every command (see :func:`summary_problems`), floats rounded so float32 noise never shows.

A plugin's job never prints and never takes ``json_output``: it calls these.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any, Iterable

from tlcli.console.output import emit_json, info as _info, print_table, terminal_safe, warn as _warn

# C0 controls but tab and newline, DEL and C1: what starts or ends an escape sequence (CSI, OSC, DCS).
_CONTROLS_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Summary keys every command writes, in this order, before its own.
SUMMARY_HEAD = ("command", "status", "run_dir")
# The metric layout of every evaluation: at the top of `metrics`.
METRIC_KEYS = ("accuracy", "top5_accuracy", "mean_recall", "per_class")
SIGNIFICANT = 6  # float32 holds about 7 digits: 0.925000011920929 reads 0.925


def escape_text(text: str) -> str:
    """Model or file text for a terminal: line breaks and tabs kept, every other control shown as an escape
    (``\\x1b``), bidi overrides too (U+202E would reverse what follows on screen)."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROLS_BUT_LINES.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def rounded(value: Any) -> Any:
    """Floats to :data:`SIGNIFICANT` digits, recursively; non-finite floats become None (valid JSON)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}") if math.isfinite(value) else None
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy / torch scalars
        return rounded(value.item())
    if isinstance(value, dict):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


class Report:
    """Where a command's output goes, decided once from ``--json``, ``--quiet`` and the terminal.

    command: the command path (``rag index``) written into the summary; json_output, quiet: the flags;
    silent: print nothing at all (other ranks of a torchrun job).
    """

    def __init__(self, command: str, *, json_output: bool = False, quiet: bool = False, silent: bool = False):
        self.command = command
        self.json_output = json_output
        self.quiet = quiet
        self.silent = silent
        self.progress_quiet = quiet  # also true while the dashboard shows the run (set by the lifecycle)
        self.shown_table = False

    @property
    def for_people(self) -> bool:
        """Whether text and tables are shown (no ``--json``, not a silent rank): a job that can produce its
        output two ways (a reply streamed for people, or whole with its usage as data) asks this."""
        return not (self.json_output or self.silent)

    # --- data --------------------------------------------------------------------------------------------

    def record(self, data: dict) -> None:
        """One result (a prediction, a hit, an answer): a JSON line with ``--json``."""
        if self.json_output and not self.silent:
            emit_json(rounded(data))

    def table(self, title: str | None, columns: list[str], rows: Iterable[list[Any]]) -> None:
        """Data for people: a table on a terminal, aligned plain text in a pipe; nothing with ``--json``."""
        if self.json_output or self.silent:
            return
        print_table(title, columns, [list(row) for row in rows])
        self.shown_table = True

    def text(self, text: str) -> None:
        """Text for people on stdout (a model's answer, a document's passage): controls escaped on a
        terminal, written as it is to a pipe or file; nothing with ``--json`` (use :meth:`record`)."""
        if self.json_output or self.silent:
            return
        shown = escape_text(text) if sys.stdout.isatty() else str(text)
        sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
        sys.stdout.flush()
        self.shown_table = True

    def drawing(self, picture: str) -> None:
        """A chart drawn for the terminal (``tlcli plot``) on stdout, its colour codes kept; nothing with
        ``--json``. The caller makes every outside string in it (a run's name, a label) terminal-safe
        before drawing: unlike :meth:`text`, nothing here is escaped."""
        if self.json_output or self.silent:
            return
        sys.stdout.write(picture if picture.endswith("\n") else picture + "\n")
        sys.stdout.flush()
        self.shown_table = True

    def stream(self, pieces: Iterable[str]) -> str:
        """A model's reply for people as it is produced (pieces on stdout, controls escaped on a terminal, as
        :meth:`text`); nothing shown with ``--json``. Returns the whole text."""
        seen = []
        tty = sys.stdout.isatty()
        for piece in pieces:
            seen.append(piece)
            if not (self.json_output or self.silent):
                sys.stdout.write(escape_text(piece) if tty else str(piece))
                sys.stdout.flush()
        text = "".join(seen)
        if not (self.json_output or self.silent):
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.shown_table = True
        return text

    # --- diagnostics ----------------------------------------------------------------------------------------

    def info(self, message: str) -> None:
        """A progress or status line on stderr (rich markup allowed); off with ``--quiet`` or the dashboard."""
        if not (self.progress_quiet or self.silent):
            _info(message)

    def warn(self, message: str) -> None:
        """A warning on stderr; shown even with ``--quiet`` (it says something went wrong)."""
        if not self.silent:
            _warn(message)

    def hint(self, message: str) -> None:
        """What to do next (a resume command, a better flag), on stderr; shown even with ``--quiet``."""
        if not self.silent:
            print(f"tlcli: {terminal_safe(message)}", file=sys.stderr, flush=True)

    def progress(self, label: str, total: int):
        """A progress bar on a terminal, plain lines every few seconds in a log; a context manager with
        ``update(done)``."""
        from tlcli.data.images import ItemProgress

        return ItemProgress(label, total, self.progress_quiet or self.silent)

    # --- the summary -----------------------------------------------------------------------------------------

    def summary(self, summary: dict, *, status: str | None = None, run_dir: str | None = None) -> dict:
        """The command's summary: the last line with ``--json``; for people, its scalar fields when the job
        showed no table. Returns the summary as written."""
        head = {"command": self.command, "status": summary.get("status") or status or "finished"}
        if run_dir is not None or summary.get("run_dir") is not None:
            head["run_dir"] = str(summary.get("run_dir") or run_dir)
        body = {k: v for k, v in summary.items() if k not in SUMMARY_HEAD}
        final = rounded({**head, **body})
        if self.silent:
            return final
        if self.json_output:
            emit_json(final)
        elif not self.shown_table:
            rows = [[key, _cell(value)] for key, value in final.items() if key != "command" and _is_scalar(value)]
            best = final.get("best")
            if isinstance(best, dict) and best.get("metric"):
                rows.append([f"best {best['metric']}", _cell(best.get("value"))])
            for key, value in (final.get("metrics") or {}).items():
                if _is_scalar(value):
                    rows.append([key, _cell(value)])
            print_table(f"{self.command} {final['status']}", ["", ""], rows)
        return final


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_problems(summary: Any) -> list[str]:
    """What breaks the one summary schema (empty when it holds); the tests check every command with it.

    ``{"command": str, "status": str, "run_dir"?: str, "best"?: {"metric", "value", "step"}, "metrics"?:
    {accuracy?, top5_accuracy?, mean_recall?, per_class?: {label: {precision, recall, support}}, ...},
    "train_samples_per_s"?: number, "infer_samples_per_s"?: number, "seeds"?: list, ...method fields}``;
    a metric is a number (or None) wherever it appears, never an object in one command and a number in
    another.
    """
    problems = []
    if not isinstance(summary, dict):
        return ["not a JSON object"]
    for key in ("command", "status"):
        if not isinstance(summary.get(key), str):
            problems.append(f"{key!r} missing or not a string")
    if "run_dir" in summary and not isinstance(summary["run_dir"], str):
        problems.append("'run_dir' not a string")
    best = summary.get("best")
    if best is not None:
        if not isinstance(best, dict) or set(best) - {"metric", "value", "step"} or "metric" not in best:
            problems.append(f"'best' must be {{metric, value, step}}, got {best!r}")
        elif not _number_or_none(best.get("value")):
            problems.append("'best.value' not a number")
    metrics = summary.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            problems.append("'metrics' not an object")
        else:
            for key in ("accuracy", "top5_accuracy", "mean_recall"):
                if key in metrics and not _number_or_none(metrics[key]):
                    problems.append(f"'metrics.{key}' not a number")
            per_class = metrics.get("per_class")
            if per_class is not None and not (isinstance(per_class, dict) and all(
                    isinstance(v, dict) and {"precision", "recall", "support"} <= set(v) for v in per_class.values())):
                problems.append("'metrics.per_class' must be {label: {precision, recall, support}}")
    for key in ("train_samples_per_s", "infer_samples_per_s", "mean", "std"):
        if key in summary and not _number_or_none(summary[key]):
            problems.append(f"{key!r} not a number")
    if "seeds" in summary and not isinstance(summary["seeds"], list):
        problems.append("'seeds' not a list")
    for legacy in ("best_val_accuracy", "images_per_s", "best_knn_accuracy"):
        if legacy in summary:
            problems.append(f"{legacy!r}: use 'best' / 'train_samples_per_s' / 'infer_samples_per_s'")
    return problems


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
