"""SIGTERM to `agents solve` (what `timeout` and systemd send) ends the run "stopped" after the current turn,
with its run_end event and summary; it used to kill the process at once, leaving neither."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

WRAPPER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from support.agents import FakeChatLLM
    import tlcli.llm
    from tlcli.cli import main

    slow = FakeChatLLM(["Still thinking, not done yet"], latency=0.3)
    tlcli.llm.resolve_llm = lambda spec=None: slow
    main(["agents", "solve", "think", "--llm", "fake:", "--max-turns", "200", "--out", sys.argv[2], "--json"])
""")


@pytest.mark.timeout(180)
def test_sigterm_ends_an_agents_run_stopped_with_its_summary(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "TLCLI_HOME": str(tmp_path / "home")}
    process = subprocess.Popen([sys.executable, "-c", WRAPPER, str(Path(__file__).parents[1]), str(run)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for a few turns
        if (run / "events.jsonl").exists() and (run / "events.jsonl").read_text().count('"message"') >= 3:
            break
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    end = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert end["kind"] == "run_end" and end["data"]["status"] == "stopped"
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["turns"] >= 2 and json.loads((run / "metrics.json").read_text())["turns"] == summary["turns"]
