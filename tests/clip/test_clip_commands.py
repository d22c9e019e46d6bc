"""The CLIP commands as data (issue 20): every flag from its config, --config / --print-config, the one summary
schema, the one --resume rule, and the shared training flags honoured by coop and vprompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlcli.cli.report import summary_problems
from support.runs import TRAINING_FLAGS



def _spec(target: str):
    from tlcli.plugin import resolve_target

    return resolve_target(target)


def test_every_declared_summary_is_the_first_line_of_its_help():
    from tlcli_clip.plugin import plugin

    assert set(plugin.commands) == {"zeroshot", "probe", "coop", "compare", "vprompt"}
    for name, (target, summary) in plugin.commands.items():
        command = _spec(target)
        assert command.name == name and command.plugin == "clip"
        assert summary == command.help.split("\n\n")[0].replace("\n", " "), name


@pytest.mark.parametrize("command", ["coop", "vprompt"])
def test_training_commands_list_the_training_flags(cli, command):
    result = cli(command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    missing = [flag for flag in TRAINING_FLAGS if flag not in result.stdout]
    assert not missing, missing


@pytest.mark.parametrize("command", ["zeroshot", "probe", "compare"])
def test_the_other_commands_take_config_and_json(cli, command):
    result = cli(command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert all(flag in result.stdout for flag in ("--config", "--print-config", "--json", "--device", "--cache",
                                                  "--no-cache"))
    assert "--image-size" not in result.stdout  # CLIP's input size is the model's
    assert ("--out" in result.stdout) == (command != "zeroshot")  # zeroshot makes no run folder
    assert "--resume" not in result.stdout  # nothing of theirs can be continued


def _vprompt(image_folder, model_args, tiny_config, tiny_weights, *extra):
    return ["vprompt", image_folder, *model_args(tiny_config, tiny_weights), "--templates", "single",
            "--batch-size", "8", "--val-split", "0.25", "--workers", "0", "--quiet", *extra]


def test_vprompt_config_file_is_recorded_and_print_config_round_trips(cli, image_folder, tiny_config, tiny_weights,
                                                                      model_args, tmp_path):
    """The done-when of issue 20: pad, max_steps and lr from a TOML file land in config.json and are honoured."""
    Path("f.toml").write_text("pad = 3\nmax_steps = 2\nlr = 0.5\n")
    args = _vprompt(image_folder, model_args, tiny_config, tiny_weights, "--config", "f.toml")
    printed = cli(*args, "--print-config")
    assert printed.exit_code == 0, printed.stderr
    assert "pad = 3" in printed.stdout and "max_steps = 2" in printed.stdout and "lr = 0.5" in printed.stdout
    assert not Path("runs").exists()
    Path("again.toml").write_text(printed.stdout)
    again = cli("vprompt", "--config", "again.toml", "--print-config")
    assert again.exit_code == 0 and again.stdout == printed.stdout

    result = cli(*args, "--out", "run", "--json", "--save-every", "1", "--scheduler", "constant", "--weight-decay",
                 "0.01")
    assert result.exit_code == 0, result.stderr
    saved = json.loads(Path("run/config.json").read_text())
    assert (saved["pad"], saved["max_steps"], saved["lr"]) == (3, 2, 0.5)
    summary = result.json_lines()[-1]
    assert summary_problems(summary) == [] and summary["command"] == "vprompt"
    assert summary["steps"] == 2 and summary["pad"] == 3
    assert summary["trainable_params"] == 3 * (32 * 32 - 26 * 26)  # pad 3 on the tiny model's 32 px
    state = json.loads(next(Path("run/checkpoints").glob("step-*/state.json")).read_text())
    assert [(g["lr"], g["weight_decay"]) for g in state["optimizer"]["param_groups"]] == [(0.5, 0.01)]


def test_coop_honours_the_training_flags(cli, image_folder, tiny_config, model_args):
    base = ["coop", image_folder, *model_args(tiny_config), "--n-ctx", "2", "--quiet", "--json"]
    result = cli(*base, "--max-steps", "3", "--lr", "0.03", "--weight-decay", "0.01", "--save-every", "1",
                 "--scheduler", "constant", "--out", "steps")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary_problems(summary) == [] and summary["command"] == "coop" and summary["steps"] == 3
    saved = json.loads(Path("steps/config.json").read_text())
    assert (saved["lr"], saved["weight_decay"], saved["max_steps"]) == (0.03, 0.01, 3)
    checkpoints = sorted(Path("steps/checkpoints").glob("step-*"))
    assert checkpoints, "--save-every 1 wrote no checkpoint"
    groups = json.loads((checkpoints[-1] / "state.json").read_text())["optimizer"]["param_groups"]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.03, 0.01)]



@pytest.mark.parametrize("command", ["coop", "vprompt"])
def test_early_stop_ends_the_run_before_its_epochs(cli, image_folder, tiny_config, model_args, command):
    extra = ["--n-ctx", "2"] if command == "coop" else ["--pad", "2", "--templates", "single", "--batch-size", "8"]
    stopped = cli(command, image_folder, *model_args(tiny_config), *extra, "--epochs", "30", "--early-stop", "1",
                  "--val-split", "0.25", "--out", "early", "--quiet", "--json")
    assert stopped.exit_code == 0, stopped.stderr
    summary = stopped.json_lines()[-1]
    assert summary["status"] == "finished" and summary["epochs"] < 30
    assert "early stop" in Path("early/events.jsonl").read_text()


def test_coop_config_file_is_recorded(cli, image_folder, tiny_config, model_args):
    Path("f.toml").write_text("n-ctx = 2\nmax_steps = 1\nlr = 0.02\nclass_specific = true\n")
    result = cli("coop", image_folder, *model_args(tiny_config), "--config", "f.toml", "--out", "run", "--quiet",
                 "--json")
    assert result.exit_code == 0, result.stderr
    saved = json.loads(Path("run/config.json").read_text())
    assert (saved["n_ctx"], saved["max_steps"], saved["lr"], saved["class_specific"]) == (2, 1, 0.02, True)
    summary = result.json_lines()[-1]
    assert summary["steps"] == 1 and summary["trainable_params"] == 3 * 2 * 64  # one context per class


@pytest.mark.parametrize("command", ["probe", "compare", "zeroshot"])
def test_print_config_round_trips_for_the_other_commands(cli, image_folder, command):
    extra = {"probe": ["--init", "zeroshot", "--shots", "4"], "compare": ["--shots", "2,8", "--no-coop"],
             "zeroshot": ["--labels", "cat,dog", "-k", "2", "--eval"]}[command]
    printed = cli(command, image_folder, *extra, "--no-cache", "--print-config")
    assert printed.exit_code == 0, printed.stderr
    assert "cache = false" in printed.stdout
    Path("f.toml").write_text(printed.stdout)
    again = cli(command, "--config", "f.toml", "--print-config")
    assert again.exit_code == 0 and again.stdout == printed.stdout


def test_every_command_ends_with_a_summary_in_the_one_schema(cli, image_folder, tiny_config, model_args):
    clip = model_args(tiny_config)
    cases = {
        "zeroshot": ["zeroshot", image_folder, "--labels", "cat,dog,fish", "--templates", "single", *clip],
        "zeroshot --eval": ["zeroshot", image_folder, "--eval", "--templates", "single", *clip],
        "probe": ["probe", image_folder, "--weight-decay", "0.1", *clip, "--out", "p"],
        "compare": ["compare", image_folder, "--shots", "1", "--no-coop", "--templates", "single", *clip,
                    "--out", "c"],
        "coop": ["coop", image_folder, "--epochs", "1", "--n-ctx", "2", *clip, "--out", "o"],
    }
    for name, args in cases.items():
        result = cli(*args, "--json", "--quiet")
        assert result.exit_code == 0, (name, result.stderr)
        summary = result.json_lines()[-1]
        assert summary_problems(summary) == [], (name, summary_problems(summary))
        assert summary["command"] == args[0] and summary["status"] == "finished", name
        assert "val_accuracy" not in summary and "images_per_s" not in summary, name
    evaluated = cli(*cases["zeroshot --eval"], "--json")
    metrics = evaluated.json_lines()[-1]["metrics"]
    # the metric layout of `tlcli evaluate`: at the top of `metrics`
    assert {"accuracy", "top5_accuracy", "mean_recall", "per_class"} <= set(metrics)
    assert set(metrics["per_class"]) == {"cat", "dog", "fish"}


@pytest.mark.parametrize("command", ["coop", "vprompt"])
def test_resume_of_a_folder_another_command_made_is_one_line(cli, image_folder, tiny_config, model_args, command):
    other = {"coop": ["vprompt", "--pad", "2", "--templates", "single"], "vprompt": ["coop", "--n-ctx", "2"]}[command]
    made = cli(*other[:1], image_folder, *other[1:], *model_args(tiny_config), "--max-steps", "1", "--out", "other",
               "--quiet")
    assert made.exit_code == 0, made.stderr
    events = Path("other/events.jsonl")  # as if it had been stopped: a run --resume would continue
    events.write_text("".join(line + "\n" for line in events.read_text().splitlines() if '"run_end"' not in line))
    before = sorted(p.name for p in Path("other").iterdir())
    result = cli(command, "--resume", "other")
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert f"not a `tlcli {command}` run" in result.stderr
    assert not Path("other/.lock").exists()
    assert sorted(p.name for p in Path("other").iterdir()) == before


def test_zeroshot_usage_errors_are_one_line(cli, image_folder, tiny_config, model_args, tmp_path):
    clip = model_args(tiny_config)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\n")
    for args, expected in (
        (["--labels", "cat,dog", "--labels-file", labels], "not both"),
        (["--labels", "cat"], "at least two class names"),
        (["--labels", "cat,cat"], "duplicate class names: cat"),
        (["--labels-file", labels], "at least two class names"),
        (["--labels-file", tmp_path / "absent.txt"], "--labels-file"),
        (["--prompt", "run", "--templates", "single"], "drop --templates"),
        (["--labels", "a,b", "--top-k", "0"], "--top-k"),
    ):
        result = cli("zeroshot", image_folder, *clip, *args)
        assert result.exit_code == 2 and expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    missing = cli("zeroshot", "--labels", "a,b")
    assert missing.exit_code == 2 and "missing PATHS" in missing.stderr


def test_probe_with_a_separate_val_folder(cli, image_folder, tiny_config, model_args, tmp_path):
    from support.clip import make_images

    val = make_images(tmp_path / "val", per_class=2, seed=1)
    result = cli("probe", image_folder, "--val", val, "--weight-decay", "0.1", *model_args(tiny_config), "--json",
                 "--quiet", "--out", "p")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["train_images"] == 36 and summary["val_images"] == 6
    wrong = make_images(tmp_path / "wrong", per_class=1, classes={"cow": (1, 2, 3), "cat": (200, 0, 0)})
    refused = cli("probe", image_folder, "--val", wrong, *model_args(tiny_config), "--out", "q")
    assert refused.exit_code == 2 and "cow" in refused.stderr and not Path("q").exists()


@pytest.mark.parametrize("command", [["vprompt", "--pad", "4", "--epochs", "1", "--val-split", "0"],
                                     ["coop", "--lora", "2", "--epochs", "1", "--val-split", "0"],
                                     ["coop", "--epochs", "1", "--val-split", "0"], ["probe", "--val", "IMAGES"]])
def test_too_few_readable_training_images_is_a_one_line_usage_error(cli, image_folder, tiny_config, model_args,
                                                                    command, tmp_path):
    data = tmp_path / "data"
    for label in ("cat", "dog", "fish"):  # the classes of image_folder, which probe's --val reads
        (data / label).mkdir(parents=True)
        for i in range(4):
            (data / label / f"broken-{i}.jpg").write_bytes(b"not an image")
    good = sorted((image_folder / "cat").iterdir())[0]
    (data / "cat" / good.name).write_bytes(good.read_bytes())
    options = [str(image_folder) if option == "IMAGES" else option for option in command[1:]]
    result = cli(command[0], data, *options, *model_args(tiny_config),
                 "--max-bad", "100%", "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 2, result.stderr
    # Only tlcli's own lines: the in-process runner's stderr may also catch a fake server thread that another
    # test left running (its socketserver tracebacks once landed here).
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("tlcli: error:")]
    assert len(errors) == 1 and "fewer than two readable training images" in errors[0]
    assert sum(line.startswith("warning: skipped") for line in lines) == 12
