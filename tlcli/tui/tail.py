"""Incremental reading of an event log that another process is appending to.

Same tolerance as `tlcli.runs.events.read_events`: a line without its newline is left for the next read
(the writer is mid-write or died), a corrupt line is skipped, a line that is not an event is ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcli.runs.events import parse_event_line

# One read never takes more than this; a huge backlog is consumed over several polls so the UI keeps
# getting updates while it catches up.
MAX_READ_BYTES = 4 * 1024 * 1024


@dataclass
class NewEvents:
    """What one read found: the complete new events, and whether the file was replaced or truncated (the
    reader must then start over from `events`)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    restarted: bool = False
    more_pending: bool = False
    error: str | None = None  # the log exists but cannot be read (a folder, no permission): one line


class EventTail:
    """Remembers how far a log has been read; `read_new()` returns only what was appended since."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._offset = 0
        self._inode: int | None = None
        # Inside a line longer than one read: what follows up to its newline is skipped, not parsed (a
        # fragment of a huge line must not pass for an event of its own).
        self._skipping_long_line = False

    @property
    def exists(self) -> bool:
        return self._inode is not None

    def read_new(self) -> NewEvents:
        try:
            stat = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return NewEvents(restarted=self._forget())
        except OSError as error:
            return NewEvents(error=_describe(error))
        found = NewEvents()
        if self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self._offset):
            # Replaced (a sync tool renames a fresh copy into place) or truncated: read it again whole.
            found.restarted = True
            self._offset = 0
            self._skipping_long_line = False
        self._inode = stat.st_ino
        if stat.st_size == self._offset:
            return found
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(min(stat.st_size - self._offset, MAX_READ_BYTES))
        except OSError as error:  # events.jsonl is a folder, unreadable, on a vanished mount
            found.error = _describe(error)
            return found
        start = 0
        if self._skipping_long_line:
            start = chunk.find(b"\n") + 1
            if start == 0:  # still inside the long line
                self._offset += len(chunk)
                found.more_pending = self._offset < stat.st_size
                return found
            self._skipping_long_line = False
        complete_end = chunk.rfind(b"\n") + 1
        if complete_end == 0:
            if len(chunk) == MAX_READ_BYTES:  # one absurdly long line: skip it rather than stall
                self._offset += len(chunk)
                self._skipping_long_line = True
                found.more_pending = self._offset < stat.st_size
            return found
        self._offset += complete_end
        found.more_pending = self._offset < stat.st_size and len(chunk) == MAX_READ_BYTES
        # split on "\n" only: splitlines() would also cut at "\r" and let "junk\r{event}" pass for an event
        for line in chunk[start:complete_end].split(b"\n"):
            event = parse_event_line(line)
            if event is not None:
                found.events.append(event)
        return found

    def _forget(self) -> bool:
        had_file = self._inode is not None
        self._inode = None
        self._offset = 0
        self._skipping_long_line = False
        return had_file


def _describe(error: OSError) -> str:
    from tlcli.console.output import display_path

    reason = (error.strerror or type(error).__name__).lower()
    return f"cannot read {display_path(error.filename or '')}: {reason}"
