"""kill -9 in the middle of a pseudo-label round, then --resume: the rounds table and the final model equal
an uninterrupted run's (the engine's resume is bit-exact on the CPU)."""

from __future__ import annotations

import json
import signal

import pytest
from safetensors.torch import load_file

from support.runs import finish, tlcli_process, wait_for_checkpoint

PLUGINS = "finetune,selfsup"
TINY = ["--model", "timm:test_resnet", "--image-size", "24", "--precision", "fp32", "--workers", "0",
        "--device", "cpu"]
ROUNDS = ["--threshold", "0.0", "--per-class-cap", "4", "--rounds", "2", "--image-size", "24", "--precision",
          "fp32", "--workers", "0", "--device", "cpu", "--epochs", "3", "--batch-size", "4", "--save-every", "1",
          "--augment", "light", "--quiet", "--json"]


@pytest.fixture(scope="module")
def start_run(colour_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("pl-start") / "start"
    finish(tlcli_process("finetune", colour_data, *TINY, "--pretrained", "none", "--max-steps", "3",
                          "--batch-size", "6", "--out", run, "--quiet", plugins=PLUGINS))
    return run


@pytest.fixture(scope="module")
def reference(colour_data, start_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("pl-reference") / "run"
    out = finish(tlcli_process("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", start_run,
                                *ROUNDS, "--out", run, plugins=PLUGINS))
    return json.loads(out.splitlines()[-1]), load_file(str(run / "model" / "model.safetensors"))


@pytest.mark.slow
def test_pseudolabel_resumes_after_kill_9_mid_round(colour_data, start_run, reference, tmp_path):
    summary, weights = reference
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    run = tmp_path / "run"
    process = tlcli_process("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", start_run, *ROUNDS,
                            "--out", run, plugins=PLUGINS)
    wait_for_checkpoint(run / "rounds" / "round-1" / "checkpoints", 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert (run / "rounds" / "round-0" / "round.json").exists()
    assert not (run / "rounds" / "round-1" / "round.json").exists(), "killed too late: round 1 had finished"
    assert not (run / "model").exists()

    out = finish(tlcli_process("pseudolabel", "--resume", run, "--quiet", "--json", plugins=PLUGINS))
    resumed = json.loads(out.splitlines()[-1])
    assert resumed["status"] == "finished"
    assert resumed["rounds"] == summary["rounds"]
    final = load_file(str(run / "model" / "model.safetensors"))
    assert final.keys() == weights.keys()
    assert all(final[k].equal(weights[k]) for k in weights), "resumed model differs from the uninterrupted one"

    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    round_1_starts = [e["data"].get("resumed_from") for e in events if e["kind"] == "run_start"
                      and e["stage"] == "round-1"]
    assert len(round_1_starts) == 2 and round_1_starts[1] >= 2  # continued from its checkpoint
    assert any("round 0: finished before the resume" in e["data"].get("message", "") for e in events
               if e["kind"] == "log")  # read back, not evaluated or trained again
    assert [e["data"]["status"] for e in events if e["kind"] == "run_end" and e["stage"] is None] == ["finished"]

    again = tlcli_process("pseudolabel", "--resume", run, plugins=PLUGINS)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "already finished" in err


def test_pseudolabel_resume_refuses_changed_options(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    done = cli("pseudolabel", "--resume", run, "--threshold", "0.5")
    assert done.exit_code == 2 and "--threshold" in done.stderr
    missing = cli("pseudolabel", "--rounds", "2")
    assert missing.exit_code == 2 and "DATA" in missing.stderr and "--resume" in missing.stderr


SEEDS = ["--domain-adapt", None, "--seeds", "1,2", *TINY, "--pretrained", "none", "--epochs", "3", "--batch-size",
         "4", "--save-every", "1", "--quiet", "--json"]


def _seeds_args(colour_data):
    return [str(colour_data) if a is None else a for a in SEEDS]


@pytest.mark.slow
def test_finetune_seeds_resume_after_kill_9_in_seed_2(colour_data, tmp_path):
    reference = tmp_path / "reference"
    expected = json.loads(finish(tlcli_process("finetune", colour_data, *_seeds_args(colour_data), "--out",
                                                reference, plugins=PLUGINS)).splitlines()[-1])
    run = tmp_path / "run"
    process = tlcli_process("finetune", colour_data, *_seeds_args(colour_data), "--out", run, plugins=PLUGINS)
    wait_for_checkpoint(run / "seed-2" / "checkpoints", 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    seed_1_model = (run / "seed-1" / "model" / "model.safetensors").read_bytes()
    assert not (run / "seed-2" / "metrics.json").exists(), "killed too late: seed 2 had finished"

    resumed = json.loads(finish(tlcli_process("finetune", "--resume", run, "--quiet", "--json",
                                               plugins=PLUGINS)).splitlines()[-1])
    assert [r["seed"] for r in resumed["seeds"]] == [1, 2]
    assert [r["best"] for r in resumed["seeds"]] == [r["best"] for r in expected["seeds"]]
    assert (resumed["mean"], resumed["std"]) == (expected["mean"], expected["std"])
    assert (run / "seed-1" / "model" / "model.safetensors").read_bytes() == seed_1_model  # read back, not retrained
    ours, theirs = (load_file(str(folder / "seed-2" / "model" / "model.safetensors")) for folder in (run, reference))
    assert all(ours[k].equal(theirs[k]) for k in theirs), "seed 2 resumed differs from the uninterrupted seed 2"
    seed_2_starts = [json.loads(line)["data"].get("resumed_from") for line in
                     (run / "seed-2" / "events.jsonl").read_text().splitlines() if '"run_start"' in line]
    assert len(seed_2_starts) == 2 and seed_2_starts[1] >= 2
    assert json.loads((run / "metrics.json").read_text())["mean"] == expected["mean"]
