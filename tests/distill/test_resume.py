"""`tlcli distill` killed with SIGKILL mid-training, then `--resume`: the same student as an uninterrupted run.

The engine restores model, optimizer, schedule, RNG and data order, and the augmented views draw their
randomness from per-sample seeds, so the resumed student (and the --feature-loss regressor that trained
with it) must match bit for bit.
"""

from __future__ import annotations

import json
import signal

import pytest
from safetensors.torch import load_file

from support.runs import finish, tlcli_process, wait_for_checkpoint

PLUGINS = "distill,finetune"  # the teacher is a fine-tuning export


def _args(data, val, teacher):
    return ["distill", data, "--teacher", teacher, "--val", val, "--student", "timm:lcnet_035", "--pretrained",
            "none", "--image-size", "32", "--batch-size", "4", "--workers", "0", "--precision", "fp32", "--device",
            "cpu", "--epochs", "3", "--save-every", "2", "--augment", "light", "--feature-loss", "--quiet"]


@pytest.mark.slow
def test_distill_resume_after_kill_9_is_bit_identical(colour_data, colour_val, teacher_run, tmp_path):
    env = {"TLCLI_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    finish(tlcli_process(*_args(colour_data, colour_val, teacher_run), "--out", reference, plugins=PLUGINS,
                          env=env))

    run = tmp_path / "run"
    process = tlcli_process(*_args(colour_data, colour_val, teacher_run), "--out", run, plugins=PLUGINS, env=env)
    wait_for_checkpoint(run / "checkpoints", 4, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (run / "model").exists()  # it really died mid-training
    finish(tlcli_process("distill", "--resume", run, plugins=PLUGINS, env=env))

    one, two = (load_file(str(folder / "model" / "model.safetensors")) for folder in (reference, run))
    assert one.keys() == two.keys() and not any("regressor" in key for key in two)
    different = [key for key in one if not (one[key] == two[key]).all()]
    assert not different, f"resumed student differs from the uninterrupted run: {different[:5]}"
    starts = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if '"run_start"' in line]
    assert len(starts) == 2 and starts[-1]["data"]["resumed_from"] >= 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["feature_weight"] == 1.0
    assert metrics["steps"] == json.loads((reference / "metrics.json").read_text())["steps"]
