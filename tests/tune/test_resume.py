"""`tlcli dpo` killed with SIGKILL mid-training, then `--resume`: the same weights as an uninterrupted run.

With the reference cache off, the resumed run computes the reference log-probs again. They must be the
starting model's, not the half-trained one's: the engine asks for the datasets before it loads the
checkpoint, and under LoRA the reference is the base with the adapters switched off.
"""

from __future__ import annotations

import json
import signal

import pytest
from safetensors.torch import load_file
from support.runs import finish, tlcli_process, wait_for_checkpoint
from support.tune import write_jsonl


def _args(pairs, model, lora: bool):
    return ["dpo", pairs, "--model", model, "--batch-size", "2", "--epochs", "3", "--save-every", "2", "--lr", "1e-3",
            "--precision", "fp32", "--device", "cpu", "--val-split", "0.2", "--no-cache", "--quiet",
            *(["--lora", "4"] if lora else [])]


@pytest.mark.slow
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_dpo_resume_after_kill_9_is_bit_identical(tiny_lm_dir, tmp_path, lora):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": f"what is {a} + 1?", "chosen": f"the answer is {a + 1}.", "rejected": str(a + 1)}
        for a in range(20, 35)])
    env = {"TLCLI_HOME": str(tmp_path / "home")}
    reference = tmp_path / "reference"
    finish(tlcli_process(*_args(pairs, tiny_lm_dir, lora), "--out", reference, plugins="tune", env=env))

    run = tmp_path / "run"
    process = tlcli_process(*_args(pairs, tiny_lm_dir, lora), "--out", run, plugins="tune", env=env)
    wait_for_checkpoint(run / "checkpoints", 4, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (run / "model").exists()  # it really died mid-training
    finish(tlcli_process("dpo", "--resume", run, plugins="tune", env=env))

    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    one, two = (load_file(str(folder / "model" / weights)) for folder in (reference, run))
    assert one.keys() == two.keys()
    different = [key for key in one if not (one[key] == two[key]).all()]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:5]}"
    first, second = (json.loads((folder / "metrics.json").read_text()) for folder in (reference, run))
    assert second["status"] == "finished" and second["steps"] == first["steps"]
    assert second["metrics"] == first["metrics"]
    assert second["reference"]["computed"] == 15  # recomputed on resume (no cache), from the starting weights
