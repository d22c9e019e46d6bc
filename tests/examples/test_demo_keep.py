"""The examples that `make demo` runs with `--keep examples/NAME/work`: a relative --keep from the folder
the command starts in (the rag example once ran its tlcli commands inside that folder and looked for its
questions file relative to it twice over, so `make demo` failed at `rag eval`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("example, expected", [("rag_docs", "rag eval on"), ("agents", "budgets: 12 turns")])
def test_an_example_keeps_its_work_in_a_relative_folder(example, expected, tmp_path):
    env = {**os.environ, "TLCLI_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / example / "run.py"), "--keep", "work"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert expected in done.stdout
    assert (tmp_path / "work").is_dir() and any((tmp_path / "work").iterdir())
