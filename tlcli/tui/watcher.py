"""Tails a run's events.jsonl in a thread and posts the screen small, replaceable updates.

Like toolong's watcher: the thread does the reading and folding; the screen only receives `RunUpdated`
messages, at most one per poll, and a pending one is superseded by a newer one (`can_replace`). A writer
that logs thousands of events per second therefore costs the UI a handful of redraws per second.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from textual.message import Message
from textual.message_pump import MessagePump

from tlcli.runs.paths import EVENTS_FILE
from tlcli.tui.state import RunState
from tlcli.tui.tail import EventTail

POLL_S = 0.2
# Liveness of a silent writer is checked this often (a crashed run writes nothing more).
STATUS_CHECK_S = 1.0


class RunUpdated(Message):
    """The latest state of the watched run; replaces an older one still waiting in the queue."""

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdated)


class EventLogWatcher:
    """Reads `run_dir/events.jsonl` as it grows (or before it exists) and posts `RunUpdated` to `target`."""

    def __init__(self, run_dir: Path, target: MessagePump, poll_s: float = POLL_S):
        self.run_dir = Path(run_dir)
        self.target = target
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tlcli-watch-{self.run_dir.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        tail = EventTail(self.run_dir / EVENTS_FILE)
        state = self._fresh_state()
        posted_status, last_check = None, 0.0
        while not self._stop.is_set():
            more_pending = False
            try:
                found = tail.read_new()
                more_pending = found.more_pending
                if found.restarted:
                    state = self._fresh_state()
                for event in found.events:
                    state.apply(event)
                log_count = state.log_count
                state.note_read_error(found.error)
                now = time.monotonic()
                changed = bool(found.events) or found.restarted or state.log_count != log_count
                if changed or now - last_check >= STATUS_CHECK_S:
                    state.judge_status()
                    last_check = now
                if changed or state.status != posted_status:
                    posted_status = state.status
                    self.target.post_message(RunUpdated(state.snapshot()))
            except Exception as error:  # a dead thread would freeze the screen: say it and keep polling
                state.note_read_error(f"monitor: reading {self.run_dir.name} failed ({type(error).__name__})")
                self.target.post_message(RunUpdated(state.snapshot()))
            if not more_pending:  # catching up on a backlog: read on without waiting
                self._stop.wait(self.poll_s)

    def _fresh_state(self) -> RunState:
        return RunState(self.run_dir, name=self.run_dir.name)
