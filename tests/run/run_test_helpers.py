"""Helpers the run tests share (imported by name: tests/ is no package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and modification time: equal snapshots mean untouched."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tlcli_process(*args, cwd=None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TLCLI_PLUGINS": "finetune,clip"}
    return subprocess.Popen([sys.executable, "-m", "tlcli", *map(str, args)], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
