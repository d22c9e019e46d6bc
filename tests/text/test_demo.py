"""The offline text demo (`make demo`'s text part) end to end: slow, run with -m slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "examples" / "text_transfer" / "run.py"


@pytest.mark.slow
def test_demo_prints_the_comparison(tmp_path):
    done = subprocess.run([sys.executable, str(RUN), "--keep", str(tmp_path), "--epochs", "3"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = done.stdout.splitlines()
    assert any(line.startswith("zero-shot") for line in table)
    assert any(line.startswith("linear probe") for line in table)
    assert any(line.startswith("soft prompt") for line in table)
