"""The command layer: flags generated from a config, --config / --print-config, the one resume rule, the
Run lifecycle and the summary line, on a toy command (no torch)."""

from __future__ import annotations

import json
import os
import sys
from typing import Literal

import pytest

from tlcli.cli.command import Command, build, to_toml
from tlcli.cli.report import summary_problems
from tlcli.fields import TrainOptions, option

CALLS: list = []


class ToyConfig(TrainOptions):
    data: str = option(..., "Input.", argument=True, metavar="DATA", missing="pass a DATA folder")
    pad: int = option(30, "Padding.", ge=1)
    mode: Literal["a", "b"] = option("a", "a | b")
    labels: list[str] | None = option(None, "Names.", short="-l")
    cache: bool = option(True, "Use the cache.")


def toy_job(cfg, run, report):
    CALLS.append((cfg, run.resumed))
    run.start({"n": 1})
    report.info("working")
    return {"status": "finished", "best": {"metric": "val_accuracy", "value": 0.925000011920929, "step": 3},
            "metrics": {"val_accuracy": 0.925000011920929}, "train_samples_per_s": 12.0}


def stopping_job(cfg, run, report):
    run.start({})
    return {"status": "stopped"}


TOY = Command("toy", ToyConfig, toy_job, "A toy.\n\nIt trains nothing.", plugin="test")


def run_toy(tmp_path, *args, spec=TOY):
    from typer.testing import CliRunner

    from tlcli.cli import main

    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with runner.isolation() as streams:
            try:
                main([os.fspath(a) for a in args[1:]] if args and args[0] == spec.name else list(map(os.fspath, args)),
                     root=build(spec))
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 0
            sys.stdout.flush()
            sys.stderr.flush()
            return code, streams[0].getvalue().decode(), streams[1].getvalue().decode()
    finally:
        os.chdir(cwd)


@pytest.fixture(autouse=True)
def _clear():
    CALLS.clear()


def test_flags_come_from_the_config_with_their_defaults(tmp_path):
    code, out, _ = run_toy(tmp_path, "--help")
    assert code == 0
    for flag in ("--pad", "--mode", "--labels", "-l", "--cache", "--no-cache", "--epochs", "--max-steps", "--lr",
                 "--weight-decay", "--save-every", "--early-stop", "--config", "--print-config", "--resume", "--out",
                 "--overwrite", "--json", "--tui", "--device", "--precision", "--seed"):
        assert flag in out, flag
    assert "eval-batch-size" not in out and "monitor-mode" not in out  # flag=False fields are no flags


def test_run_records_the_config_and_ends_with_one_summary_line(tmp_path):
    code, out, err = run_toy(tmp_path, "d", "--pad", "3", "--labels", "x, y", "--no-cache", "--out", "r", "--json")
    assert code == 0, err
    cfg, resumed = CALLS[0]
    assert (cfg.pad, cfg.labels, cfg.cache, resumed) == (3, ["x", "y"], False, False)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["pad"] == 3 and saved["labels"] == ["x", "y"] and saved["cache"] is False
    last = json.loads(out.splitlines()[-1])
    assert last["command"] == "toy" and last["status"] == "finished" and last["run_dir"].endswith("r")
    assert last["best"]["value"] == 0.925  # float32 noise rounded away
    assert summary_problems(last) == []
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["command"] == "toy"


def test_config_file_then_flags_typed_win(tmp_path):
    (tmp_path / "f.toml").write_text('pad = 3\nmax-steps = 2\nlr = 0.5\nmode = "b"\n')
    code, _, err = run_toy(tmp_path, "d", "--config", "f.toml", "--mode", "a", "--out", "r")
    assert code == 0, err
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["pad"], saved["max_steps"], saved["lr"], saved["mode"]) == (3, 2, 0.5, "a")


def test_print_config_round_trips_through_config(tmp_path):
    code, out, _ = run_toy(tmp_path, "d", "--pad", "7", "--labels", "p,q", "--print-config")
    assert code == 0 and not (tmp_path / "runs").exists()
    (tmp_path / "again.toml").write_text(out)
    code, again, _ = run_toy(tmp_path, "--config", "again.toml", "--print-config")
    assert code == 0 and again == out
    assert 'labels = ["p", "q"]' in out and "pad = 7" in out


@pytest.mark.parametrize("args, expected", [
    (["--pad", "0"], "--pad: Input should be greater than or equal to 1"),
    (["--lr", "inf"], "--lr:"),
    ([], "missing DATA: pass a DATA folder"),
    (["--seed", str(2**63 - 1)], "--seed:"),
])
def test_bad_values_are_one_line_and_exit_2_with_no_folder(tmp_path, args, expected):
    code, _, err = run_toy(tmp_path, *(["d"] if args else []), *args, "--out", "r")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_config_file_with_an_unknown_key_is_refused(tmp_path):
    (tmp_path / "f.toml").write_text("padd = 3\n")
    code, _, err = run_toy(tmp_path, "d", "--config", "f.toml")
    assert code == 2 and "unknown option 'padd'" in err


def test_resume_refuses_changes_and_foreign_folders_without_leaving_a_lock(tmp_path):
    assert run_toy(tmp_path, "d", "--out", "r")[0] == 0
    code, _, err = run_toy(tmp_path, "--resume", "r", "--pad", "9")
    assert code == 2 and "drop --pad" in err
    code, _, err = run_toy(tmp_path, "--resume", "r", "--workers", "0")  # speed only: allowed
    assert "finished" in err  # the run already finished: said, nothing changed
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"teacher": "x", "epochs": 1}))
    (foreign / "events.jsonl").write_text(json.dumps({"kind": "run_start", "data": {"command": "distill"}}) + "\n")
    code, _, err = run_toy(tmp_path, "--resume", "other")
    assert code == 2 and "not a `tlcli toy` run" in err and "distill" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (foreign / ".lock").exists()
    # A finished run of another command is still another command's: refused, not "already finished".
    with open(foreign / "events.jsonl", "a") as events:
        events.write(json.dumps({"kind": "run_end", "data": {"status": "finished"}}) + "\n")
    code, _, err = run_toy(tmp_path, "--resume", "other")
    assert code == 2 and "not a `tlcli toy` run" in err and len(err.strip().splitlines()) == 1, err
    assert not (foreign / ".lock").exists()


def test_a_stopped_run_prints_the_line_that_continues_it(tmp_path):
    spec = Command("toy", ToyConfig, stopping_job, "A toy.", plugin="test")
    code, out, err = run_toy(tmp_path, "d", "--out", "r", spec=spec)
    assert code == 0
    assert "continue with: tlcli toy --resume r" in err


def test_to_toml_is_what_tomllib_reads():
    import tomllib

    values = {"a": 1, "b": 0.5, "c": "x\"y\\z", "d": [1, 2], "e": True, "f": None, "g": ["é"]}
    assert tomllib.loads(to_toml(values)) == {k: v for k, v in values.items() if v is not None}


def test_summary_problems_catch_the_old_shapes():
    assert summary_problems({"command": "x", "status": "finished", "best_val_accuracy": 0.5})
    assert summary_problems({"command": "x", "status": "finished", "metrics": {"accuracy": {"mean": 1}}})
    assert not summary_problems({"command": "x", "status": "finished", "seeds": [1, 2], "mean": 0.5, "std": 0.1})


def test_resume_of_a_finished_run_another_command_made_is_refused_not_called_finished(tmp_path):
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"teacher": "x"}))
    (foreign / "events.jsonl").write_text(
        json.dumps({"kind": "run_start", "stage": None, "data": {"command": "distill"}}) + "\n"
        + json.dumps({"kind": "run_end", "stage": None, "data": {"status": "finished"}}) + "\n")
    code, _, err = run_toy(tmp_path, "--resume", "other")
    assert code == 2 and "not a `tlcli toy` run" in err and "already finished" not in err
    assert len(err.strip().splitlines()) == 1 and not (foreign / ".lock").exists()
