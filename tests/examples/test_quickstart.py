"""The README's quick start, run line by line as a newcomer would (slow: a few minutes)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quickstart_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- quickstart -->\n```bash\n(.*?)```", text, flags=re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a few minutes on a quiet 2-core machine, far more on a busy one
def test_the_quick_start_runs_in_order_offline(tmp_path):
    """From a folder that holds the repository's examples/ and docs/, every line exits 0 (the dashboard,
    which waits for a key, is opened on a pseudo-terminal by tests/tui instead)."""
    for name in ("examples", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "TLCLI_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    python = shlex.quote(sys.executable)
    outputs = {}
    for line in quickstart_lines():
        if line.startswith("tlcli monitor"):
            continue
        command = re.sub(r"^tlcli ", f"{python} -m tlcli ", line)
        command = re.sub(r"^python ", f"{python} ", command)
        print(f"quick start: {line}", file=sys.stderr, flush=True)
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=3000)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
        outputs[line] = done.stdout
    probe = next(v for k, v in outputs.items() if k.startswith("tlcli predict runs/topics"))
    assert "weather" in probe
    predicted = [json.loads(x) for x in next(v for k, v in outputs.items() if k.startswith("tlcli predict runs/digits")
                                             ).splitlines()]
    assert len(predicted) == 3 and all(len(p["top"]) == 2 for p in predicted)
    evaluated = next(v for k, v in outputs.items() if k.startswith("tlcli evaluate"))
    assert "accuracy" in evaluated
    assert (tmp_path / "runs" / "digits" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "runs" / "docs-index" / "manifest.json").is_file()
