"""Finding the runs in a folder and keeping their states current without re-reading whole logs."""

from __future__ import annotations

import os
from pathlib import Path

from tlcli.runs.paths import CONFIG_FILE, EVENTS_FILE
from tlcli.tui.state import RunState
from tlcli.tui.tail import EventTail


def is_run_dir(path: Path) -> bool:
    try:
        return (path / EVENTS_FILE).is_file() or (path / CONFIG_FILE).is_file()
    except OSError:  # a folder we may not look into (EACCES): not a run we can show
        return False


def find_runs(root: Path) -> list[Path]:
    """Run folders directly inside `root`, newest first."""
    try:
        children = [Path(entry.path) for entry in os.scandir(root) if entry.is_dir()]
    except OSError:  # missing, not a folder, no permission: no runs to show
        return []
    runs = [child for child in children if is_run_dir(child)]
    return sorted(runs, key=_modified, reverse=True)


def _modified(path: Path) -> float:
    for candidate in (path / EVENTS_FILE, path):
        try:
            return candidate.stat().st_mtime
        except OSError:
            continue
    return 0.0


class RunReader:
    """Keeps one tail and one state per run folder; `read(run_dir)` folds only what was appended."""

    def __init__(self) -> None:
        self._open: dict[Path, tuple[EventTail, RunState]] = {}

    def read(self, run_dir: Path) -> RunState:
        run_dir = Path(run_dir)
        tail, state = self._open.get(run_dir) or (EventTail(run_dir / EVENTS_FILE), None)
        if state is None:
            state = RunState(run_dir, name=run_dir.name)
        while True:
            found = tail.read_new()
            if found.restarted:
                state = RunState(run_dir, name=run_dir.name)
            for event in found.events:
                state.apply(event)
            state.note_read_error(found.error)
            if not found.more_pending:
                break
        state.judge_status()
        self._open[run_dir] = (tail, state)
        return state.snapshot()
