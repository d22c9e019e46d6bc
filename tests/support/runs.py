"""Run helpers: `tlcli` as a subprocess, waiting for its checkpoints, snapshots of a run folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and modification time: equal snapshots mean untouched."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tlcli_process(*args, cwd=None, plugins: str = "finetune,clip", env: dict | None = None,
                  **kwargs) -> subprocess.Popen:
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1", "TLCLI_PLUGINS": plugins, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "tlcli", *map(str, args)], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_checkpoint(checkpoints: Path, minimum_step: int, process: subprocess.Popen, timeout: float = 120) -> int:
    """Wait until ``checkpoints`` holds a complete ``step-N`` with N >= ``minimum_step`` (returns N); fails if
    ``process`` ends first (it ended before it could be interrupted)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [int(p.name.rsplit("-", 1)[1]) for p in Path(checkpoints).glob("step-*") if (p / "COMPLETE").exists()]
        if steps and max(steps) >= minimum_step:
            return max(steps)
        if process.poll() is not None:
            raise AssertionError(f"run ended before it could be interrupted: {process.stderr.read()[-3000:]}")
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint of step {minimum_step} or later appeared in {checkpoints}")


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for a ``tlcli_process`` and require exit 0; returns its stdout."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


# The flags every training command lists and honours (issue 20), checked in each plugin's tests.
TRAINING_FLAGS = ("--epochs", "--max-steps", "--lr", "--weight-decay", "--save-every", "--early-stop", "--config",
                  "--resume", "--out", "--overwrite", "--json", "--tui", "--device", "--precision", "--seed",
                  "--report-to")
