"""Shared fixtures. Each test folder may add its own conftest.py for its area."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import pytest

# Tests never reach a hub; make libraries fail fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _hypothesis_profiles() -> None:
    """Property tests explore new examples on every local run; CI runs a fixed set (derandomized), so a
    red CI is always a change of ours, never a newly drawn example, and has no deadline (a busy runner)."""
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profiles()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `tlcli ARGS...` in-process: returns exit code, stdout and stderr separately.

    The working directory is a fresh tmp folder and TLCLI_HOME points inside it, so runs/ and caches
    never leak between tests.
    """
    from typer.testing import CliRunner

    from tlcli.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / ".tlcli-home"))

    def run(*args, input: str | None = None, env: dict | None = None) -> CliResult:
        runner = CliRunner()
        with runner.isolation(input=input, env=env) as streams:
            try:
                main([os.fspath(a) for a in args])
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            stdout = streams[0].getvalue().decode("utf-8", "replace")
            stderr = streams[1].getvalue().decode("utf-8", "replace")
        return CliResult(code, stdout, stderr)

    return run


@pytest.fixture
def on_a_terminal(tmp_path):
    """Run `tlcli ARGS` under a pseudo-terminal (`script -qc`) in tmp_path; returns what the terminal received
    (stdout and stderr together). Skips where script(1) is missing."""
    import shlex
    import shutil
    import subprocess

    if shutil.which("script") is None:
        pytest.skip("needs script(1) for a pseudo-terminal")

    def run(*args, timeout: int = 300) -> str:
        command = shlex.join([sys.executable, "-m", "tlcli", *map(str, args)])
        env = {**os.environ, "TLCLI_HOME": str(tmp_path / ".tlcli-home"), "NO_COLOR": "1", "COLUMNS": "200"}
        done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=timeout, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.replace("\r\n", "\n")

    return run
