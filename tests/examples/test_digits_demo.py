"""The `make demo` digits example end to end (slow: a few minutes)."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_transfer" / "run.py"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes on a quiet 2-core machine, more on a busy one
def test_the_transfer_workflow_runs_over_seeds_and_reports_mean_and_std(tmp_path):
    """Two seeds here to keep CI short; which arm wins is what docs/examples/digits_transfer.md measured over
    five (a two-seed ranking would be noise)."""
    done = subprocess.run([sys.executable, str(EXAMPLE), "--work", str(tmp_path), "--seeds", "2", "--json"],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    *rows, summary = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["seed"] for row in rows] == [0, 1]
    assert all(row["labelled"] == 25 and row["test_images"] > 700 for row in rows)
    assert all(row["transfer"] > 0.5 and row["scratch"] > 0.5 for row in rows)  # both learn (chance: 0.2)
    assert summary["seeds"] == 2 and summary["source"] == "letters" and summary["source_val_accuracy"] > 0.9
    assert summary["transfer_trainable_params"] < summary["scratch_trainable_params"]
    for arm in ("transfer", "scratch"):
        values = [row[arm] for row in rows]
        assert summary[f"{arm}_mean"] == pytest.approx(statistics.fmean(values), abs=1e-4)
        assert summary[f"{arm}_std"] == pytest.approx(statistics.stdev(values), abs=1e-4)
    assert summary["transfer_wins"] == sum(row["transfer"] > row["scratch"] for row in rows)
    assert json.loads((tmp_path / "results-fp32.json").read_text())["summary"] == summary
    # the seed changes which images are labelled
    assert (tmp_path / "labelled-seed0.csv").read_text() != (tmp_path / "labelled-seed1.csv").read_text()
