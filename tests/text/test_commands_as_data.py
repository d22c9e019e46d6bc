"""The text plugin's commands as data: declared summaries, the training flags of `prompt-tune` listed and
honoured, --config / --print-config, --resume of a folder another command made, and model/file text escaped
on a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlcli.cli.report import summary_problems
from tlcli.plugin import resolve_target
from support.runs import TRAINING_FLAGS

CLASSIFY = ["--virtual-tokens", "4", "--max-length", "24", "--batch-size", "10", "--quiet", "--device", "cpu",
            "--precision", "fp32"]


@pytest.fixture
def pairs(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    colours = ["red", "green", "blue", "yellow"]
    path.write_text("".join(json.dumps({"input": f"the colour of item {i} is", "target": colours[i % 4]}) + "\n"
                            for i in range(24)))
    return path


@pytest.fixture
def generate(tiny_gpt2_dir):
    return ["--mode", "generate", "--model", str(tiny_gpt2_dir), "--virtual-tokens", "4", "--batch-size", "8",
            "--quiet", "--device", "cpu", "--precision", "fp32"]


def test_declared_summaries_are_the_first_help_lines():
    from tlcli_text.plugin import plugin

    assert set(plugin.commands) == {"text zeroshot", "text probe", "text predict", "text evaluate", "text finetune",
                                    "text compare",
                                    "prompt-tune train", "prompt-tune predict"}
    for path, (target, summary) in plugin.commands.items():
        command = resolve_target(target)
        assert command.path == path
        assert command.help.splitlines()[0] == summary, path


@pytest.mark.parametrize("target", ["tlcli_text.cli:PREDICT", "tlcli_text.cli:EVALUATE",
                                    "tlcli_text.cli:PROMPT_TUNE_PREDICT"])
def test_the_run_folder_is_the_first_argument(target):
    """`text predict RUN TEXTS...`: whatever order the core gives fields (declaration order, or the method's
    own first), RUN_DIR comes before the texts or DATA."""
    from tlcli.cli.command import build

    arguments = [p.name for p in build(resolve_target(target)).params if p.param_type_name == "argument"]
    assert arguments[0] == "run_dir" and len(arguments) == 2, arguments


@pytest.mark.parametrize("words", [["prompt-tune", "train"], ["prompt-tune", "data.csv"]])
def test_prompt_tune_lists_the_training_flags(cli, words):
    result = cli(*words, "--help")
    assert result.exit_code == 0, result.stderr
    for flag in TRAINING_FLAGS:
        assert flag in result.stdout, flag


def test_max_steps_and_save_every(cli, pairs, generate):
    result = cli("prompt-tune", pairs, *generate, "--epochs", "5", "--max-steps", "3", "--save-every", "2",
                 "--out", "run", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary_problems(summary) == [] and summary["command"] == "prompt-tune train"
    assert summary["steps"] == 3 and summary["epochs"] < 5
    saved = [json.loads(line) for line in Path("run/events.jsonl").read_text().splitlines()]
    assert 2 in [e["step"] for e in saved if e["kind"] == "checkpoint"]  # --save-every 2: a checkpoint at step 2
    assert json.loads(Path("run/config.json").read_text())["save_every"] == 2


def test_early_stop_ends_the_run_when_validation_stops_improving(cli, pairs, generate):
    # A learning rate too small to change anything: every evaluation after the first is no improvement.
    args = ["--epochs", "6", "--lr", "1e-12", "--scheduler", "constant", "--json"]
    stopped = cli("prompt-tune", pairs, *generate, *args, "--early-stop", "1", "--out", "early")
    full = cli("prompt-tune", pairs, *generate, *args, "--out", "full")
    assert stopped.exit_code == 0 and full.exit_code == 0, stopped.stderr + full.stderr
    assert full.json_lines()[-1]["epochs"] == 6
    assert stopped.json_lines()[-1]["epochs"] == 2


def test_lr_and_weight_decay_reach_the_optimizer(cli, few_shot_csv, monkeypatch):
    import tlcli.engine.loop as loop

    built = []
    original = loop._build_optimizer

    def remember(name, groups):
        built.append([{"name": g.get("name"), "lr": g["lr"], "weight_decay": g["weight_decay"]} for g in groups])
        return original(name, groups)

    monkeypatch.setattr(loop, "_build_optimizer", remember)
    train, _ = few_shot_csv
    result = cli("prompt-tune", train, *CLASSIFY, "--max-steps", "1", "--lr", "0.05", "--head-lr", "0.02",
                 "--weight-decay", "0.125", "--out", "run", "--json")
    assert result.exit_code == 0, result.stderr
    groups = {g["name"]: g for g in built[0]}
    assert groups["prompt"]["lr"] == 0.05 and groups["prompt"]["weight_decay"] == 0.0
    assert groups["head"]["lr"] == 0.02 and groups["head"]["weight_decay"] == 0.125
    assert groups["head/no_decay"]["weight_decay"] == 0.0
    saved = json.loads(Path("run/config.json").read_text())
    assert (saved["lr"], saved["head_lr"], saved["weight_decay"]) == (0.05, 0.02, 0.125)


def test_config_file_is_recorded_and_print_config_round_trips(cli, pairs, tiny_gpt2_dir, tmp_path):
    (tmp_path / "f.toml").write_text("virtual_tokens = 3\nmax_steps = 2\nlr = 0.5\n")
    result = cli("prompt-tune", pairs, "--mode", "generate", "--model", tiny_gpt2_dir, "--batch-size", "8",
                 "--config", tmp_path / "f.toml", "--quiet", "--device", "cpu", "--out", "run", "--json")
    assert result.exit_code == 0, result.stderr
    saved = json.loads(Path("run/config.json").read_text())
    assert (saved["virtual_tokens"], saved["max_steps"], saved["lr"]) == (3, 2, 0.5)
    assert result.json_lines()[-1]["steps"] == 2
    printed = cli("prompt-tune", pairs, "--config", tmp_path / "f.toml", "--print-config")
    assert printed.exit_code == 0 and not Path("runs").exists()
    (tmp_path / "again.toml").write_text(printed.stdout)
    again = cli("prompt-tune", "--config", tmp_path / "again.toml", "--print-config")
    assert again.exit_code == 0 and again.stdout == printed.stdout
    assert "virtual_tokens = 3" in printed.stdout and f'data = "{pairs}"' in printed.stdout


def test_resume_of_a_folder_another_command_made_is_one_line(cli, few_shot_csv):
    train, _ = few_shot_csv
    probe = cli("text", "probe", train, "--val-split", "0.5", "--out", "probe", "--json")
    assert probe.exit_code == 0, probe.stderr
    assert summary_problems(probe.json_lines()[-1]) == []
    for folder in ("probe",):
        refused = cli("prompt-tune", "--resume", folder)
        assert refused.exit_code == 2, refused.stderr
        assert "not a `tlcli prompt-tune train` run" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
        assert not (Path(folder) / ".lock").exists()
    probe_resume = cli("text", "probe", "--resume", "probe")
    assert probe_resume.exit_code == 2 and "--resume" in probe_resume.stderr  # a probe never resumes


def test_every_text_command_ends_with_one_summary_line(cli, few_shot_csv):
    train, test = few_shot_csv
    assert cli("text", "probe", train, "--val-split", "0.5", "--out", "probe").exit_code == 0
    for args in (["text", "zeroshot", "hello", "--labels", "a,b"], ["text", "predict", "probe", "Whisk the eggs"],
                 ["text", "evaluate", "probe", test]):
        result = cli(*args, "--json")
        assert result.exit_code == 0, result.stderr
        summary = result.json_lines()[-1]
        assert summary_problems(summary) == [] and summary["command"] == " ".join(args[:2]), summary
    metrics = result.json_lines()[-1]["metrics"]
    assert {"accuracy", "top5_accuracy", "mean_recall", "per_class"} <= set(metrics)


def test_texts_from_files_are_escaped_on_a_terminal(tmp_path, minilm_dir, on_a_terminal):
    hostile = tmp_path / "texts.txt"
    hostile.write_text("Snow \x1b]52;c;ZXZpbA==\x07 tonight\nThe \x1b[2Jstriker scored\n")
    shown = on_a_terminal("text", "zeroshot", "--input", hostile, "--labels", "sports,weather", "--quiet")
    assert "\x1b]52" not in shown and "\x1b[2J" not in shown
    assert "ZXZpbA" in shown  # the text is shown, its controls made visible
