"""The `make demo` example end to end (slow: about a minute or two)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_transfer" / "run.py"


@pytest.mark.slow
def test_the_transfer_workflow_runs_and_trains_fewer_parameters(tmp_path):
    """The example shows the workflow; transfer does not beat scratch on every CPU (README), so no ranking."""
    done = subprocess.run([sys.executable, str(EXAMPLE), "--work", str(tmp_path), "--json"], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    transfer, scratch = rows
    assert transfer["test_images"] > 800
    assert transfer["trainable_params"] < scratch["trainable_params"]
    assert transfer["test_accuracy"] > 0.5 and scratch["test_accuracy"] > 0.5  # both learn (chance: 0.2)
