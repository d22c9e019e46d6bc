"""`--tui`: run a training job in a worker thread while the dashboard watches its run folder; once the
dashboard closes, the terminal holds what a plain run prints (see `run_with_dashboard`)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def dashboard_available() -> bool:
    """The dashboard needs a terminal on stdin and stdout."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def progress_is_quiet(tui: bool, quiet: bool) -> bool:
    """Whether a command's own progress lines should be off: with ``--quiet``, or while the dashboard
    shows the run. ``--tui`` without a terminal (``nohup``, a pipe, CI) keeps the plain progress lines."""
    return quiet or (tui and dashboard_available())


def run_in(run, job: Callable[[bool], T], tui: bool, quiet: bool) -> T:
    """The end of every training command: ``job(quiet_progress)`` inside ``run`` (whose context manager writes
    the run's end however the job ends), on the dashboard with ``--tui``. ``quiet_progress`` follows
    :func:`progress_is_quiet`, so ``--tui`` without a terminal still prints plain progress lines."""
    quiet_progress = progress_is_quiet(tui, quiet)

    def inside() -> T:
        with run:
            return job(quiet_progress)

    return run_with_dashboard(run.path, inside) if tui else inside()


def run_with_dashboard(run_dir: Path, job: Callable[[], T]) -> T:
    """Run `job` (the training, which writes run_dir/events.jsonl) in a worker thread while the dashboard shows
    the run; when the job ends, the final summary stays on screen until `q`; returns job's result or re-raises
    its exception after the app closes. Without a terminal (stdin or stdout not a TTY), prints a one-line note on
    stderr and just returns job(), whose progress lines (see progress_is_quiet) then go to stderr as usual.

    Leaving the dashboard with `q` while the job still runs does not abandon it: this waits for the job in the
    terminal (a note says so); Ctrl-C then writes the stop request, so the run checkpoints and ends as stopped.

    After the dashboard, the terminal holds what a plain run prints: what the job wrote to stdout and stderr
    while the dashboard was up (held, then written in order), then on stderr the run folder and, for a run
    that stopped or was interrupted after a checkpoint, the line to continue it (`tlcli COMMAND --resume DIR`,
    see :func:`closing_lines`). The caller prints its summary after this returns (the last stdout line).
    """
    if not dashboard_available():
        # The job's own progress lines follow (see progress_is_quiet): the dashboard is what is ignored.
        print("tlcli: --tui ignored: not a terminal", file=sys.stderr, flush=True)
        return job()

    from tlcli.tui.app import build_monitor_app

    outcome = JobOutcome()
    app = build_monitor_app(Path(run_dir), show_runs=False)
    app.follow_job(outcome)

    def work() -> None:
        try:
            outcome.result = job()
        except BaseException as error:  # re-raised in the caller's thread
            outcome.error = error
        finally:
            outcome.done.set()

    worker = threading.Thread(target=work, name="tlcli-job", daemon=True)
    worker.start()
    try:
        app.run()
    finally:
        said = _write_held(app.held_output, write=not app.output_passed_through)
    if not outcome.done.is_set():
        _wait_after_dashboard(Path(run_dir), outcome)
    if outcome.error is not None:
        said += str(outcome.error)
    for line in closing_lines(Path(run_dir), hint_said="--resume" in said):
        print(line, file=sys.stderr, flush=True)
    if outcome.error is not None:
        raise outcome.error
    return outcome.result


def closing_lines(run_dir: Path, hint_said: bool = False) -> list[str]:
    """What `--tui` prints once the dashboard has closed, read from the run's event log: the run folder, and,
    when the run stopped or was interrupted after writing a checkpoint, how to continue it (the command is
    the run's own, from its run_start event; unless ``hint_said``: the job said it already)."""
    from tlcli.console.output import display_path
    from tlcli.tui.state import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():  # the job failed before its run started (the folder is removed)
        return []
    run = load_run(run_dir)
    lines = [f"tlcli: run folder {display_path(run_dir)} ({run.status})"]
    resumable = run.status in ("stopped", "interrupted") and run.checkpoints and run.command
    if resumable and not hint_said:
        lines.append(f"tlcli: {run.status}; continue with: tlcli {run.command} --resume {display_path(run_dir)}")
    return lines


def _write_held(held: list[tuple[str, bool]], write: bool = True) -> str:
    """Write what the job printed while the dashboard was up to the real streams; returns its stderr text."""
    errors = []
    for text, to_stderr in held:
        if write:
            (sys.stderr if to_stderr else sys.stdout).write(text)
        if to_stderr:
            errors.append(text)
    sys.stdout.flush()
    sys.stderr.flush()
    return "".join(errors)


class JobOutcome:
    """Filled in by the job's thread; the app polls `done` (it may start before or after the job ends)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None

    @property
    def error_line(self) -> str | None:
        if self.error is None:
            return None
        text = " ".join(str(self.error).split())
        name = type(self.error).__name__
        return f"{name}: {text}" if text else name


def _wait_after_dashboard(run_dir: Path, outcome: JobOutcome) -> None:
    from tlcli.tui.stop import request_stop

    from tlcli.console.output import display_path

    print(f"tlcli: dashboard closed; training continues (watch it with: tlcli monitor {display_path(run_dir)}). "
          "Ctrl-C asks it to stop.", file=sys.stderr, flush=True)
    try:
        outcome.done.wait()
    except KeyboardInterrupt:
        request_stop(run_dir)
        print("tlcli: stop requested; waiting for the checkpoint (Ctrl-C again to abandon)",
              file=sys.stderr, flush=True)
        outcome.done.wait()

