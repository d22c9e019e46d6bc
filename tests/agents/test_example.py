"""The offline demo (make demo) runs, says its answers are scripted, solves, replays exactly and stops on
a budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_agents_demo(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples/agents/run.py"), "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("scripted model answers: the offline tiny model")
    assert "status solved after 8 turns; answer: 23 pens (17 cents each) and one paper bag (4 cents) cost 395 cents." in out
    assert "replay without a model: exact (12 messages, answer identical)" in out
    assert "--max-turns 4: status budget_exhausted after 4 turns" in out and "'23 pens cost 391 cents.'" in out
    assert (tmp_path / "solved" / "events.jsonl").is_file()
