"""--report-to across a kill -9 and a resume: the CSV written live, and the TensorBoard files a resume adds
(`--report-to` may change on --resume), end up holding what the run's events.jsonl holds: the steps trained
again after the checkpoint replace the killed session's. `tlcli runs export` writes the same CSV afterwards.
(Two TensorBoard files of two sessions: tests/run/test_metric_sinks.py.)"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np

from support.runs import finish, tlcli_process, wait_for_checkpoint
from tlcli.runs.events import read_events
from tlcli.runs.scalars import history, series

TINY = ["--model", "timm:test_resnet", "--pretrained", "none", "--image-size", "24", "--batch-size", "4",
        "--workers", "0", "--precision", "fp32", "--device", "cpu", "--quiet", "--log-every", "1"]


def _tensorboard(logdir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def _wait_for_metric_after(log: Path, step: int, process, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(e["kind"] == "metric" and e["step"] > step for e in read_events(log)):
            return
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    raise AssertionError("no metric after the checkpoint")


def test_live_csv_and_tensorboard_added_on_resume_survive_a_kill(image_folder, tmp_path):
    run = tmp_path / "run"
    process = tlcli_process("finetune", image_folder, *TINY, "--epochs", "5", "--save-every", "4",
                            "--report-to", "csv", "--out", run, plugins="finetune")
    checkpoint = wait_for_checkpoint(run / "checkpoints", 4, process)
    _wait_for_metric_after(run / "events.jsonl", checkpoint, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed = [e["step"] for e in read_events(run / "events.jsonl") if e["kind"] == "metric"]

    assert not (run / "tensorboard").exists()
    finish(tlcli_process("finetune", "--resume", run, "--report-to", "csv,tensorboard", plugins="finetune"))
    events = list(read_events(run / "events.jsonl"))
    resumed_from = [e["data"]["resumed_from"] for e in events if e["kind"] == "run_start"][-1]
    assert resumed_from is not None and max(killed) > resumed_from  # steps were logged, then trained again

    rows = history(events).rows
    steps = [r.step for r in rows if "loss" in r.values]
    assert steps == sorted(set(steps)) and steps[-1] == events[-1]["step"]  # each step once, in order
    read_back = _tensorboard(run / "tensorboard")
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1  # the killed session's, then live
    for name in ("loss", "val_accuracy", "samples_per_s"):
        assert read_back[name] == [(s, float(np.float32(v))) for s, _, v, _ in series(rows, name)], name

    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    exported = tlcli_process("runs", "export", run, "--format", "csv", "--out", tmp_path / "after.csv",
                             plugins="finetune")
    finish(exported)
    assert (tmp_path / "after.csv").read_bytes() == (run / "metrics.csv").read_bytes()
