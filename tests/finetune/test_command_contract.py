"""`tlcli finetune` as a command declared as data: the training flags exist and are honoured, --config
values reach config.json, the summary follows the one schema, --resume refuses another command's folder."""

from __future__ import annotations

import json

import pytest

from tlcli.cli.report import summary_problems
from support.runs import TRAINING_FLAGS

TINY = ["--model", "timm:test_resnet", "--pretrained", "none", "--image-size", "24", "--batch-size", "6",
        "--workers", "0", "--precision", "fp32", "--device", "cpu", "--quiet", "--json"]



def _events(run, kind):
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if f'"{kind}"' in line]


def test_help_lists_every_training_flag_and_the_summary_is_its_first_line(cli):
    from tlcli_finetune.cli import FINETUNE
    from tlcli_finetune.plugin import plugin

    done = cli("finetune", "--help")
    assert done.exit_code == 0
    for flag in TRAINING_FLAGS + ("--seeds", "--domain-adapt", "--freeze-until", "--lr-decay"):
        assert flag in done.stdout, flag
    assert plugin.commands["finetune"][1] == FINETUNE.help.splitlines()[0]


def test_config_file_training_values_reach_config_json_the_optimizer_and_the_loop(cli, colour_data, tmp_path,
                                                                                   optimizer_groups):
    (tmp_path / "f.toml").write_text("max_steps = 3\nlr = 0.02\nweight-decay = 0.125\nsave_every = 1\n"
                                     "epochs = 1\nlr_decay = 1.0\n")
    done = cli("finetune", colour_data, *TINY, "--config", tmp_path / "f.toml", "--out", tmp_path / "run")
    assert done.exit_code == 0, done.stderr
    summary = done.json_lines()[-1]
    assert summary_problems(summary) == []
    assert summary["command"] == "finetune" and summary["status"] == "finished"
    assert summary["steps"] == 3
    assert summary["best"]["metric"] == "val_accuracy" and "val_accuracy" in summary["metrics"]
    assert summary["train_samples_per_s"] > 0 and summary["trainable_params"] > 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["max_steps"], saved["lr"], saved["weight_decay"], saved["save_every"]) == (3, 0.02, 0.125, 1)
    assert {lr for lr, _ in optimizer_groups} == {0.02}
    assert {wd for _, wd in optimizer_groups} == {0.0, 0.125}  # no decay on biases and norms
    # --save-every 1: a checkpoint after steps 1 and 2 (the epoch's end saves step 3 anyway)
    assert {e["step"] for e in _events(tmp_path / "run", "checkpoint")} >= {1, 2, 3}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 3


def test_early_stop_ends_training_after_evaluations_without_improvement(cli, colour_data, tmp_path, monkeypatch):
    from tlcli.engine import loop

    monkeypatch.setattr(loop, "_better", lambda value, best, mode: False)  # no evaluation ever improves
    done = cli("finetune", colour_data, *TINY, "--epochs", "4", "--early-stop", "1", "--out", tmp_path / "run")
    assert done.exit_code == 0, done.stderr
    summary = done.json_lines()[-1]
    assert summary["epochs"] == 2  # the first evaluation sets the best, the second does not improve it
    assert any("early stop" in e["data"]["message"] for e in _events(tmp_path / "run", "log"))


def test_print_config_round_trips_through_config(cli, tmp_path):
    done = cli("finetune", "data/", "--seeds", "1,2", "--lr", "0.5", "--print-config")
    assert done.exit_code == 0, done.stderr
    assert "seeds = [1, 2]" in done.stdout and "lr = 0.5" in done.stdout
    (tmp_path / "f.toml").write_text(done.stdout)
    again = cli("finetune", "--config", tmp_path / "f.toml", "--print-config")
    assert again.exit_code == 0 and again.stdout == done.stdout


@pytest.mark.parametrize("finished", [False, True])
def test_resume_of_another_commands_folder_is_one_line_and_leaves_no_lock(cli, tmp_path, finished):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "rotation", "data": ["x"]}))
    events = [{"kind": "run_start", "stage": None, "data": {"command": "pretrain"}}]
    if finished:
        events.append({"kind": "run_end", "stage": None, "data": {"status": "finished"}})
    (other / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    done = cli("finetune", "--resume", other)
    assert done.exit_code == 2
    assert "not a `tlcli finetune` run" in done.stderr and "pretrain" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (other / ".lock").exists()


@pytest.mark.parametrize("seeds", ["1,x", "1,1", "-1"])
def test_bad_seeds_exit_2_before_any_work(cli, colour_data, tmp_path, seeds):
    done = cli("finetune", colour_data, "--seeds", seeds, "--out", tmp_path / "run")
    assert done.exit_code == 2 and "--seeds" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
