"""A declared group with a default sub-command: `tlcli GROUP ARGS` runs `GROUP DEFAULT ARGS` unless the first
word names a sub-command or asks for help (what `tlcli prompt-tune DATA` relies on)."""

from __future__ import annotations

import click

from tlcli.cli.lazy import add_declared


def _root(seen: list):
    train = click.Command("train", params=[click.Argument(["data"], required=False),
                                           click.Option(["--epochs"], type=int)],
                          callback=lambda data, epochs: seen.append(("train", data, epochs)))
    predict = click.Command("predict", params=[click.Argument(["run"])],
                            callback=lambda run: seen.append(("predict", run)))
    import sys

    module = type(sys)("lazy_default_targets")
    module.TRAIN, module.PREDICT = train, predict
    sys.modules["lazy_default_targets"] = module
    root = click.Group("tlcli")
    add_declared(root, {"tune train": ("lazy_default_targets:TRAIN", "Train."),
                        "tune predict": ("lazy_default_targets:PREDICT", "Predict.")},
                 {"tune": "Tuning."}, None, {"tune": "train"})
    return root


def test_the_default_runs_when_no_sub_command_is_named():
    seen: list = []
    root = _root(seen)
    root.main(["tune", "data.csv", "--epochs", "2"], standalone_mode=False)
    root.main(["tune", "--epochs", "3"], standalone_mode=False)
    root.main(["tune", "train", "x.csv"], standalone_mode=False)
    root.main(["tune", "predict", "runs/r"], standalone_mode=False)
    assert seen == [("train", "data.csv", 2), ("train", None, 3), ("train", "x.csv", None), ("predict", "runs/r")]


def test_help_and_no_words_show_the_group(capsys):
    seen: list = []
    root = _root(seen)
    for args in (["tune", "--help"], ["tune"]):
        try:
            root.main(args, standalone_mode=False)
        except Exception as done:  # help ends with Click's or Typer's Exit, no words with NoArgsIsHelp
            assert type(done).__name__ in ("Exit", "NoArgsIsHelpError"), done
            pass
        out = capsys.readouterr().out
        assert "train" in out and "predict" in out and not seen


def test_a_group_declared_alone_runs_its_default_without_words(capsys):
    """`tlcli runs` lists the runs (`tlcli runs list`); `tlcli runs --help` still shows the group."""
    seen: list = []
    _root(seen)  # registers the module of targets
    root = click.Group("tlcli")
    add_declared(root, {"runs list": ("lazy_default_targets:TRAIN", "List."),
                        "runs show": ("lazy_default_targets:PREDICT", "Show.")},
                 {"runs": "Runs."}, None, {"runs": "list"}, alone=("runs",))
    root.main(["runs"], standalone_mode=False)
    root.main(["runs", "somewhere"], standalone_mode=False)
    root.main(["runs", "show", "r"], standalone_mode=False)
    assert seen == [("train", None, None), ("train", "somewhere", None), ("predict", "r")]
    try:
        root.main(["runs", "--help"], standalone_mode=False)
    except Exception as done:
        assert type(done).__name__ == "Exit", done
    assert "show" in capsys.readouterr().out and len(seen) == 3
