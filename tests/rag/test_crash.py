"""kill -9 in the middle of an update leaves the previous index complete and answering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tlcli_rag.search import IndexReader


@pytest.mark.slow
def test_kill_mid_update_keeps_the_old_index(small_copy):
    folder = small_copy / ".tlcli-index"
    before = IndexReader(folder)
    old_counts = before.counts()
    old_generation = before.manifest.generation
    before.close()
    # Enough new text that embedding takes a while after the new generation's temp files appear.
    extra = small_copy / "docs" / "many"
    extra.mkdir()
    for n in range(20):
        (extra / f"part{n:02d}.txt").write_text(" ".join(f"token{n}_{i} sentence." for i in range(60)))
    process = subprocess.Popen([sys.executable, "-m", "tlcli", "rag", "index", "docs", "notes", "--quiet"],
                               cwd=small_copy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and process.poll() is None:
            if any(".tmp-" in p.name for p in folder.iterdir()):
                break
            time.sleep(0.01)
        assert process.poll() is None, "the update finished before it could be interrupted"
        assert any(".tmp-" in p.name for p in folder.iterdir())
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL

    after = IndexReader(folder)
    assert after.manifest.generation == old_generation and after.counts() == old_counts
    assert after.hits(after.lexical("E4021", 3, []))[0].source == "docs/errors.md"
    after.close()

    # The next run cleans up and completes the update.
    done = subprocess.run([sys.executable, "-m", "tlcli", "rag", "index", "docs", "notes", "--json", "--quiet"],
                          cwd=small_copy, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"added": 20' in done.stdout.splitlines()[-1]
    assert not any(".tmp-" in p.name for p in folder.iterdir())
