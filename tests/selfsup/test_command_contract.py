"""`tlcli pretrain` and `tlcli pseudolabel` as commands declared as data: the training flags exist and are
honoured (each round's training for pseudolabel), --config values reach config.json, the summary follows the
one schema, --resume refuses another command's folder."""

from __future__ import annotations

import json
import os

import pytest

from tlcli.cli.report import summary_problems
from support.runs import TRAINING_FLAGS

PLACE = ["--image-size", "24", "--batch-size", "6", "--workers", "0", "--precision", "fp32", "--device", "cpu",
         "--quiet", "--json"]
TINY = ["--model", "timm:test_resnet", *PLACE]



@pytest.fixture(scope="module")
def start_run(colour_data, tmp_path_factory):
    """A finetune run the pseudo-labelling starts from."""
    from tlcli.cli import main

    run = tmp_path_factory.mktemp("start") / "run"
    try:
        main(["finetune", os.fspath(colour_data), *TINY, "--pretrained", "none", "--max-steps", "2", "--out",
              os.fspath(run)])
    except SystemExit as done:
        assert not done.code
    return run


def _events(run, kind):
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if f'"{kind}"' in line]


def _write_toml(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", ["pretrain", "pseudolabel"])
def test_help_lists_every_training_flag_and_the_summary_is_its_first_line(cli, command):
    from tlcli_selfsup import cli as declared
    from tlcli_selfsup.plugin import plugin

    done = cli(command, "--help")
    assert done.exit_code == 0
    for flag in TRAINING_FLAGS:
        assert flag in done.stdout, flag
    spec = {"pretrain": declared.PRETRAIN, "pseudolabel": declared.PSEUDOLABEL}[command]
    assert plugin.commands[command][1] == spec.help.splitlines()[0]


def test_pretrain_config_file_values_reach_config_json_the_optimizer_and_the_loop(cli, colour_data, tmp_path,
                                                                                  optimizer_groups):
    config = _write_toml(tmp_path / "f.toml", 'task = "rotation"\nmax_steps = 3\nlr = 0.02\nweight-decay = 0.125\n'
                         "save_every = 1\nepochs = 1\nknn_k = 3\n")
    done = cli("pretrain", colour_data, *TINY, "--val", colour_data, "--config", config, "--out", tmp_path / "run")
    assert done.exit_code == 0, done.stderr
    summary = done.json_lines()[-1]
    assert summary_problems(summary) == []
    assert "best_knn_accuracy" not in summary and summary["steps"] == 3
    assert summary["best"]["metric"] == "knn_accuracy" and summary["best"]["value"] is not None
    assert summary["metrics"]["knn_accuracy"] == summary["best"]["value"]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["max_steps"], saved["lr"], saved["weight_decay"], saved["save_every"], saved["knn_k"]) == (
        3, 0.02, 0.125, 1, 3)
    assert {lr for lr, _ in optimizer_groups} == {0.02}
    assert 0.125 in {wd for _, wd in optimizer_groups}
    assert {e["step"] for e in _events(tmp_path / "run", "checkpoint")} >= {1, 2, 3}


def test_pretrain_early_stop_watches_the_knn_accuracy(cli, colour_data, tmp_path, monkeypatch):
    from tlcli.engine import loop

    monkeypatch.setattr(loop, "_better", lambda value, best, mode: False)  # no evaluation ever improves
    done = cli("pretrain", colour_data, *TINY, "--val", colour_data, "--epochs", "4", "--early-stop", "1",
               "--out", tmp_path / "run")
    assert done.exit_code == 0, done.stderr
    assert done.json_lines()[-1]["epochs"] == 2
    assert any("early stop: knn_accuracy" in e["data"]["message"] for e in _events(tmp_path / "run", "log"))


def test_pseudolabel_config_file_values_reach_each_round(cli, colour_data, start_run, tmp_path, optimizer_groups):
    config = _write_toml(tmp_path / "f.toml", f'unlabelled = "{colour_data}"\nstart = "{start_run}"\n'
                         "threshold = 0.0\nrounds = 1\nmax_steps = 2\nlr = 0.02\nweight_decay = 0.125\n"
                         "save_every = 1\nepochs = 1\n")
    done = cli("pseudolabel", colour_data, *PLACE, "--config", config, "--out", tmp_path / "run")
    assert done.exit_code == 0, done.stderr
    summary = done.json_lines()[-1]
    assert summary_problems(summary) == []
    rounds = summary["rounds"]
    assert [(r["round"], r["steps"]) for r in rounds] == [(0, 0), (1, 2)]
    assert summary["best"] == {"metric": "val_accuracy", "value": rounds[-1]["val_accuracy"], "step": None}
    assert summary["metrics"]["kept"] == rounds[-1]["kept"]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["max_steps"], saved["lr"], saved["weight_decay"], saved["save_every"]) == (2, 0.02, 0.125, 1)
    assert saved["start"] == str(start_run) and saved["model"] == "timm:test_resnet"  # read from the --from run
    assert {lr for lr, _ in optimizer_groups} == {0.02}
    assert 0.125 in {wd for _, wd in optimizer_groups}
    saved_at = {e["step"] for e in _events(tmp_path / "run", "checkpoint") if e["stage"] == "round-1"}
    assert saved_at >= {1, 2}


def test_pseudolabel_early_stop_applies_to_each_round(cli, colour_data, start_run, tmp_path, monkeypatch):
    from tlcli.engine import loop

    monkeypatch.setattr(loop, "_better", lambda value, best, mode: False)
    done = cli("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", start_run, "--threshold", "0",
               "--rounds", "1", "--epochs", "4", "--early-stop", "1", *PLACE, "--out", tmp_path / "run")
    assert done.exit_code == 0, done.stderr
    evaluations = [e for e in _events(tmp_path / "run", "eval") if e["stage"] == "round-1"
                   and "round" not in e["data"]["metrics"]]  # the engine's, not the round's row
    assert len(evaluations) == 2  # of --epochs 4: the second evaluation did not improve on the first
    logs = [e for e in _events(tmp_path / "run", "log") if "early stop" in e["data"]["message"]]
    assert [e["stage"] for e in logs] == ["round-1"]


def test_pseudolabel_from_a_folder_without_a_model_is_one_line(cli, colour_data, tmp_path):
    done = cli("pseudolabel", colour_data, "--unlabelled", colour_data, "--from", tmp_path, "--out", tmp_path / "r")
    assert done.exit_code == 2 and "model" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command, other", [("pretrain", "finetune"), ("pseudolabel", "pretrain")])
@pytest.mark.parametrize("finished", [False, True])
def test_resume_of_another_commands_folder_is_one_line_and_leaves_no_lock(cli, tmp_path, command, other, finished):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"data": "x", "model": "resnet18"}))
    events = [{"kind": "run_start", "stage": None, "data": {"command": other}}]
    if finished:
        events.append({"kind": "run_end", "stage": None, "data": {"status": "finished"}})
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    done = cli(command, "--resume", folder)
    assert done.exit_code == 2
    assert f"not a `tlcli {command}` run" in done.stderr and other in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (folder / ".lock").exists()
