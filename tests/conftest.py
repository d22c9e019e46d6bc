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
    """Run `tlcli ARGS` under a pseudo-terminal (`script -qec`) in tmp_path; returns what the terminal received
    (stdout and stderr together). Skips where script(1) is missing."""
    import shutil

    from support.terminal import on_terminal

    if shutil.which("script") is None:
        pytest.skip("needs script(1) for a pseudo-terminal")

    def run(*args, timeout: int = 300) -> str:
        code, screen = on_terminal(args, tmp_path, home=tmp_path / ".tlcli-home", timeout=timeout,
                                   env={"NO_COLOR": "1"})
        assert code == 0, screen
        return screen.replace("\r\n", "\n")

    return run


@pytest.fixture
def optimizer_groups(monkeypatch):
    """The (lr, weight_decay) of every parameter group the engine's optimizers are built with."""
    from tlcli.engine import loop

    seen: list[tuple[float, float]] = []
    build = loop._build_optimizer

    def spy(name, groups):
        optimizer = build(name, groups)
        seen.extend((g["lr"], g["weight_decay"]) for g in optimizer.param_groups)
        return optimizer

    monkeypatch.setattr(loop, "_build_optimizer", spy)
    return seen
