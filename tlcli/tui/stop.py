"""The stop request: a file in the run folder that the engine polls; it checkpoints and ends as stopped."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tlcli.runs.paths import STOP_REQUEST_FILE, atomic_write_text


def request_stop(run_dir: Path) -> Path:
    """Write `run_dir/stop-request` (JSON: when, by whom) and return its path."""
    path = Path(run_dir) / STOP_REQUEST_FILE
    request = {"requested_at": round(time.time(), 3), "by": "tlcli monitor", "pid": os.getpid()}
    atomic_write_text(path, json.dumps(request) + "\n")
    return path
