"""Shell completion: `tlcli --install-completion` / `--show-completion`, answered from the lazy command table
without importing torch or a command's job."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Completion happens in-process: main([]) with the completion variables set answers and exits.
PROBE = """
import json, sys
from tlcli.cli import main
try:
    main([])
except SystemExit as done:
    code = done.code
heavy = [m for m in ("torch", "torchvision", "transformers", "open_clip", "faiss", "numpy") if m in sys.modules]
jobs = [m for m in sys.modules if m.startswith("tlcli_") and m.endswith(".job")]
print(json.dumps({"code": code, "heavy": heavy, "jobs": jobs}), file=sys.stderr)
"""


def complete(words: str, cword: int) -> tuple[list[str], dict]:
    env = {**os.environ, "_TLCLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, env=env)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return done.stdout.split(), report


def test_command_names_complete_without_importing_torch_or_any_command_module():
    words, report = complete("tlcli fi", 1)
    assert words == ["finetune"]
    assert report["code"] == 0 and report["heavy"] == [] and report["jobs"] == []
    code = ("import json, sys, os\nfrom tlcli.cli import main\ntry:\n    main([])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    env = {**os.environ, "_TLCLI_COMPLETE": "complete_bash", "COMP_WORDS": "tlcli ", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    loaded = [m for m in modules if m.startswith("tlcli_") and m.count(".") == 1 and not m.endswith(".plugin")]
    assert loaded == [], f"completing a command name imported command modules: {loaded}"
    names = done.stdout.split()
    assert {"finetune", "zeroshot", "rag", "agents", "monitor", "predict"} <= set(names)


@pytest.mark.parametrize("words, cword, expected", [
    ("tlcli rag s", 2, ["search", "serve"]),
    ("tlcli finetune --ep", 2, ["--epochs"]),
    ("tlcli rag search --mo", 3, ["--model", "--mode"]),
    ("tlcli monitor --wa", 2, ["--wait"]),
])
def test_sub_commands_and_flags_complete_without_torch(words, cword, expected):
    found, report = complete(words, cword)
    assert found == expected
    assert report["heavy"] == [], f"completing {words!r} imported {report['heavy']}"


def test_show_completion_prints_the_script_for_the_shell_named():
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    done = subprocess.run([sys.executable, "-m", "tlcli", "--show-completion", "bash"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "_TLCLI_COMPLETE=complete_bash" in done.stdout and "complete -o default -F" in done.stdout


def test_install_completion_writes_into_the_users_shell_files(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    done = subprocess.run([sys.executable, "-m", "tlcli", "--install-completion", "bash"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "tlcli.sh"
    assert "_TLCLI_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
