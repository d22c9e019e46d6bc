"""The lazy command table and what every command declares (issue 20's bars), checked over the whole tree."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tlcli.cli.command import Command
from tlcli.cli.lazy import LazyCommand, iter_commands
from support.runs import TRAINING_FLAGS

TRAINING_COMMANDS = ("finetune", "coop", "vprompt", "distill", "pretrain", "pseudolabel", "prompt-tune")


def _root():
    from tlcli.cli import build_command

    return build_command()


def _declared():
    """(path, target, summary) of every declared command: the core's and each plugin's."""
    from tlcli.cli import CORE_COMMANDS
    from tlcli.registry import load_plugins

    rows = [(path, *entry) for path, entry in CORE_COMMANDS.items()]
    for loaded in load_plugins().loaded:
        rows += [(path, *entry) for path, entry in loaded.plugin.commands.items()]
    return rows


def test_help_imports_no_command_module_and_no_torch():
    code = ("import sys\nfrom tlcli.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import json\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    assert "torch" not in modules
    assert "pyarrow" not in modules and "datasets" not in modules  # table inputs load them when read
    loaded = [m for m in modules if m.startswith("tlcli_") and m.count(".") == 1 and not m.endswith(".plugin")]
    assert loaded == [], f"`tlcli --help` imported command modules: {loaded}"


@pytest.mark.parametrize("path, target, summary", _declared(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_declared_summary_is_the_first_line_of_its_help(path, target, summary):
    from tlcli.plugin import resolve_target

    found = resolve_target(target)
    if isinstance(found, Command):
        assert found.path == path
        assert " ".join(found.help.strip().split("\n\n")[0].split()) == summary


def test_every_command_loads_and_training_commands_share_the_training_flags():
    seen = {}
    for path, command in iter_commands(_root()):
        assert not isinstance(command, LazyCommand), path
        seen[path] = {opt for param in command.params for opt in getattr(param, "opts", []) + getattr(
            param, "secondary_opts", [])}
    for path in TRAINING_COMMANDS:
        flags = seen.get(path) or seen.get(f"{path} train")
        assert flags is not None, f"no command {path}"
        missing = [flag for flag in TRAINING_FLAGS if flag not in flags]
        assert not missing, f"{path} lacks {missing}"


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
@pytest.mark.parametrize("maker", ["another command", "no command recorded"])
def test_resume_of_a_folder_this_command_cannot_continue_is_one_line(cli, tmp_path, command, maker):
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"something": "else", "epochs": 1}))
    start = {"kind": "run_start", "step": 0, "data": {"command": "not-" + command}} if maker == "another command" else {}
    (folder / "events.jsonl").write_text(json.dumps(start) + "\n" if start else "")
    result = cli(*command.split(), "--resume", folder)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and "--resume" in lines[0], lines
    assert not (folder / ".lock").exists()
    assert json.loads((folder / "config.json").read_text())["something"] == "else"  # nothing changed


def test_the_command_reference_matches_the_declarations():
    """docs/cli.md is generated from the same declarations as --help: regenerate it when a flag changes."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "docs" / "make_cli_md.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
