"""Stopping a real `tlcli finetune` process: SIGTERM (docker stop, SLURM, timeout) and the stop-request file
(the monitor's `s` key) end the run as "stopped" with the best model so far in model/, the request removed;
`--resume` then ends bit-identical to a run that was never stopped."""

from __future__ import annotations

import json
import signal
import time

import pytest
from safetensors.torch import load_file

from support.runs import tlcli_process

ARGS = ["--model", "resnet18", "--pretrained", "none", "--image-size", "32", "--batch-size", "4", "--workers", "0",
        "--precision", "fp32", "--device", "cpu", "--epochs", "3", "--save-every", "2", "--freeze-until", "layer1",
        "--val-split", "0.25", "--quiet"]


def _wait_for_step(run, minimum: int, process, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = [int(p.name.rsplit("-", 1)[1]) for p in (run / "checkpoints").glob("step-*") if (p / "COMPLETE").exists()]
        if done and max(done) >= minimum:
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it could be stopped: {process.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.fixture(scope="module")
def reference(image_folder, tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    done = tlcli_process("finetune", image_folder, *ARGS, "--out", run)
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    return load_file(str(run / "model" / "model.safetensors"))


def _stopped_then_resumed(run, reference):
    last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "run_end" and last["data"]["status"] == "stopped"
    assert (run / "model" / "model.safetensors").is_file()  # the best model so far, exported
    assert not (run / "stop-request").exists()
    resumed = tlcli_process("finetune", "--resume", run)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert json.loads((run / "events.jsonl").read_text().splitlines()[-1])["data"]["status"] == "finished"
    weights = load_file(str(run / "model" / "model.safetensors"))
    assert weights.keys() == reference.keys()
    different = [k for k in reference if not (weights[k] == reference[k]).all()]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:5]}"


@pytest.mark.slow
@pytest.mark.timeout(900)  # three finetune processes; minutes on a busy 2-core machine
def test_sigterm_exports_and_resume_matches_an_uninterrupted_run(image_folder, reference, tmp_path):
    run = tmp_path / "run"
    process = tlcli_process("finetune", image_folder, *ARGS, "--out", run)
    _wait_for_step(run, 2, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    _stopped_then_resumed(run, reference)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stop_request_exports_and_resume_matches_an_uninterrupted_run(image_folder, reference, tmp_path):
    run = tmp_path / "run"
    process = tlcli_process("finetune", image_folder, *ARGS, "--out", run)
    _wait_for_step(run, 2, process)
    (run / "stop-request").write_text("{}")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    _stopped_then_resumed(run, reference)
