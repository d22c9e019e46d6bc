"""--overwrite replaces only a folder tlcli made (its marker, config and events together), and the run lock is
held by the main process alone: a kill -9 frees the folder at once even while its children live on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from support.runs import snapshot
from tlcli.console.errors import UsageError
from tlcli.runs.run import Run

FINETUNE = ["--model", "resnet18", "--pretrained", "none", "--image-size", "32", "--batch-size", "4",
            "--workers", "0", "--precision", "fp32", "--device", "cpu", "--epochs", "1", "--quiet"]


def _project(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.json").write_text("{}")
    (proj / "src" / "main.py").write_text("x")
    return proj


def test_overwrite_refuses_a_folder_that_only_looks_like_a_run(cli, image_folder, tmp_path):
    proj = _project(tmp_path)
    before = snapshot(proj)
    result = cli("finetune", image_folder, *FINETUNE, "--out", proj, "--overwrite")
    assert result.exit_code == 2, result.stderr
    assert "not a tlcli run folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(proj) == before
    # config.json and events.jsonl with a run_start, but the user's files beside them: still refused
    (proj / "events.jsonl").write_text(json.dumps({"time": 1, "run": "proj", "kind": "run_start", "step": 0,
                                                   "epoch": 0, "stage": None, "data": {}}) + "\n")
    before = snapshot(proj)
    with pytest.raises(UsageError, match="'src', which no run writes"):
        Run.create("finetune", proj, overwrite=True)
    assert snapshot(proj) == before


def test_a_forged_marker_is_refused(tmp_path):
    proj = _project(tmp_path)
    (proj / ".tlcli-run").write_text("trust me")
    with pytest.raises(UsageError, match="not written by tlcli"):
        Run.create("probe", proj, overwrite=True)
    assert (proj / "src" / "main.py").exists()


def test_a_run_made_by_tlcli_is_replaced(tmp_path):
    out = tmp_path / "r"
    with Run.create("probe", out, config={"a": 1}) as old:
        old.start()
        old.finish("finished", {"accuracy": 0.5})
    assert (out / ".tlcli-run").is_file()
    with Run.create("probe", out, overwrite=True, config={"a": 2}) as new:
        new.start()
        new.finish("finished", {"accuracy": 0.9})
    assert json.loads((out / "metrics.json").read_text()) == {"accuracy": 0.9}


def test_a_run_from_before_the_marker_is_replaced_when_it_holds_only_run_files(tmp_path):
    out = tmp_path / "old"
    with Run.create("finetune", out, config={"a": 1}) as old:
        old.start()
        with old.model_writer() as tmp:
            (tmp / "model.json").write_text("{}")
        (out / "checkpoints" / "step-00000002").mkdir(parents=True)
        old.finish("finished", {"accuracy": 0.5})
    (out / ".tlcli-run").unlink()  # as an older tlcli left it
    with Run.create("finetune", out, overwrite=True) as new:
        new.start()
        new.finish("finished", {"accuracy": 0.9})
    assert not (out / "checkpoints").exists() and (out / ".tlcli-run").is_file()


LOCK_HOLDER = textwrap.dedent("""
    import os, sys, time
    from tlcli.runs.run import Run
    run = Run.create("finetune", sys.argv[1], config={"a": 1})
    run.start()
    child = os.fork()
    if child == 0:          # an orphaned DataLoader worker: it outlives the main process
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
""")


def test_resume_right_after_kill_9_while_a_child_lives(tmp_path):
    out = tmp_path / "r"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(UsageError, match=f"in use by pid {holder.pid} on"):
            Run.resume(out)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(child, 0)  # the child still lives
        run = Run.resume(out)  # at once: the lock went with the main process
        run.finish("stopped")
    finally:
        holder.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_a_dead_pid_is_never_named(tmp_path):
    out = tmp_path / "r"
    with Run.create("probe", out) as run:
        run.start()
        run.finish("stopped")
    (out / ".lock").write_text("pid 999999999 on " + __import__("socket").gethostname())
    # Nobody holds the lock: the stale text is no obstacle, and a holder that has not rewritten it yet is
    # "another process", never the dead pid.
    from tlcli.runs.run import _holder

    with open(out / ".lock", "a+", encoding="utf-8") as handle:
        assert _holder(handle) == "another process"
    Run.resume(out).close()


def test_a_second_run_on_the_same_folder_in_one_process_is_refused(tmp_path):
    out = tmp_path / "r"
    first = Run.create("probe", out)
    first.start()
    with pytest.raises(UsageError, match="in use by this process"):
        Run.resume(out)
    first.finish("stopped")
    Run.resume(out).close()
