"""The Run: folder creation and refusal, locking, clean-up of runs that never started, atomic model writes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from tlcli.console.errors import UsageError
from tlcli.runs.events import read_events
from tlcli.runs.run import Run, RunFinished


def test_create_writes_config_without_secrets(tmp_path):
    run = Run.create("probe", tmp_path / "r", config={"lr": 0.1, "api_key": "sk-abcdefghijklmnop",
                                                      "url": "http://user:hunter2@host/v1"})
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["lr"] == 0.1
    assert saved["api_key"] == "***"
    assert "hunter2" not in saved["url"]
    run.close()


def test_non_empty_folder_is_refused_and_untouched(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "model").mkdir()
    (out / "config.json").write_text("precious")
    with pytest.raises(UsageError, match="--overwrite"):
        Run.create("probe", out)
    assert (out / "config.json").read_text() == "precious"
    assert (out / "model").is_dir()


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a tlcli run"):
        Run.create("probe", out, overwrite=True)
    assert (out / "cat.jpg").exists()


def test_overwrite_replaces_only_after_the_new_run_started(tmp_path):
    out = tmp_path / "r"
    with Run.create("probe", out) as old:
        old.start()
        old.finish("finished", {"accuracy": 0.5})
    # The new run fails before its first event: the old run comes back whole.
    with pytest.raises(UsageError):
        with Run.create("probe", out, overwrite=True):
            raise UsageError("bad option found late")
    assert json.loads((out / "metrics.json").read_text()) == {"accuracy": 0.5}
    # The new run starts: now the old one is gone.
    with Run.create("probe", out, overwrite=True) as new:
        new.start()
        new.finish("finished", {"accuracy": 0.9})
    assert json.loads((out / "metrics.json").read_text()) == {"accuracy": 0.9}
    assert [e["kind"] for e in read_events(out / "events.jsonl")] == ["run_start", "run_end"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failure_before_first_event_removes_the_folder(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(UsageError):
        with Run.create("probe", out, config={"a": 1}):
            raise UsageError("only one class")
    assert not out.exists()


def test_failure_after_start_is_logged_as_failed(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(RuntimeError):
        with Run.create("probe", out) as run:
            run.start()
            raise RuntimeError("boom")
    end = [e for e in read_events(out / "events.jsonl") if e["kind"] == "run_end"]
    assert end[-1]["data"]["status"] == "failed" and "boom" in end[-1]["data"]["error"]
    assert Run.open(out).status == "failed"
    assert not (out / ".lock").exists()


def test_second_process_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "r"
    run = Run.create("probe", out)
    run.start()
    code = textwrap.dedent(f"""
        from tlcli.runs.run import Run
        from tlcli.console.errors import UsageError
        try:
            Run.resume({str(out)!r})
        except UsageError as e:
            print("refused:", e)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused:" in result.stdout and f"pid {os.getpid()}" in result.stdout
    run.finish("stopped")
    # Released: now another process may take it.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused" not in result.stdout, result.stdout + result.stderr


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    out = tmp_path / "r"
    with Run.create("probe", out) as run:
        run.start()
        run.finish("finished", {"accuracy": 1.0})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RunFinished) as caught:
        Run.resume(out)
    assert caught.value.exit_code == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_cleans_crash_leftovers_and_stop_request(tmp_path):
    out = tmp_path / "r"
    with Run.create("finetune", out) as run:
        run.start()
        run.finish("stopped")
    (out / "checkpoints" / ".tmp-step-00000004").mkdir(parents=True)
    (out / "stop-request").write_text("{}")
    Run.resume(out).close()
    assert not (out / "checkpoints" / ".tmp-step-00000004").exists()
    assert not (out / "stop-request").exists()


def test_metrics_are_valid_json_without_nan(tmp_path):
    with Run.create("probe", tmp_path / "r") as run:
        run.start()
        run.finish("finished", {"loss": math.nan, "acc": math.inf, "nested": {"x": -math.inf}})
    text = (tmp_path / "r" / "metrics.json").read_text()
    assert json.loads(text) == {"loss": None, "acc": None, "nested": {"x": None}}


def test_model_writer_is_all_or_nothing(tmp_path):
    run = Run.create("probe", tmp_path / "r")
    run.start()
    with run.model_writer() as tmp:
        (tmp / "model.json").write_text('{"kind": "a"}')
    with pytest.raises(RuntimeError):
        with run.model_writer() as tmp:
            (tmp / "model.json").write_text('{"kind": "b"}')
            raise RuntimeError("crash mid-export")
    assert json.loads((run.model_dir / "model.json").read_text()) == {"kind": "a"}
    assert sorted(p.name for p in run.path.iterdir()) == [".lock", ".tlcli-run", "config.json", "events.jsonl", "model"]
    run.finish()


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "f"
    target.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        Run.create("probe", target)
    assert target.read_text() == "x"


def test_a_failed_resume_leaves_metrics_agreeing_with_run_end(tmp_path):
    out = tmp_path / "r"
    with Run.create("finetune", out) as run:
        run.start()
        run.finish("stopped", {"status": "stopped", "steps": 4})
    with pytest.raises(RuntimeError):
        with Run.resume(out) as again:
            again.start()
            raise RuntimeError("worker died")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" == Run.open(out).status and "worker died" in metrics["error"]


def test_resume_removes_what_a_kill_9_left_and_closes_a_torn_event_line(tmp_path):
    out = tmp_path / "r"
    with Run.create("finetune", out) as run:
        run.start()
        with run.model_writer() as tmp:
            (tmp / "model.json").write_text('{"kind": "a"}')
        run.finish("stopped")
    # killed between model_writer's two renames, mid-atomic-write, and mid-event
    os.replace(out / "model", out / ".old-model-4242")
    (out / ".tmp-model-4242").mkdir()
    (out / ".metrics.json.tmp-4242").write_text("{")
    with open(out / "events.jsonl", "a") as handle:
        handle.write('{"time": 1, "kind": "met')
    with Run.resume(out) as again:
        again.log("info", "resumed")
    assert json.loads((out / "model" / "model.json").read_text()) == {"kind": "a"}
    assert sorted(p.name for p in out.iterdir()) == [".tlcli-run", "config.json", "events.jsonl", "model"]
    assert [e["kind"] for e in read_events(out / "events.jsonl")][-2:] == ["log", "run_end"]
