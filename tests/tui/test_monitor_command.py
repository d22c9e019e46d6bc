"""`tlcli monitor` on the command line, and what monitoring imports."""

from __future__ import annotations

import subprocess
import sys

from support import tui_logs as logs


def test_help_has_an_example(cli):
    result = cli("monitor", "--help")
    assert result.exit_code == 0
    assert "tlcli monitor runs/" in result.stdout and "stop" in result.stdout


def test_without_a_terminal_it_is_a_usage_error(cli, tmp_path):
    result = cli("monitor", str(logs.write(tmp_path / "ft", logs.finished_run())))
    assert result.exit_code == 2
    assert "needs a terminal" in result.stderr and "events.jsonl" in result.stderr


HEAVY = ("torch", "torchvision", "numpy", "open_clip", "transformers", "sentence_transformers")

WATCH = """
import asyncio

async def watch(app):
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.screen.run is not None and app.screen.run.status == "finished":
                break
        assert app.screen.run.status == "finished", app.screen.run
        print("SHOWN", app.screen.run.status)
"""


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def test_the_dashboard_imports_no_torch_and_no_plugin(tmp_path):
    run = logs.write(tmp_path / "ft", logs.finished_run())
    output = run_python(WATCH + f"""
import sys
from tlcli.tui.app import build_monitor_app
asyncio.run(watch(build_monitor_app({str(run)!r})))
print("MODULES", sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} or m.startswith("tlcli_")))
""")
    assert "SHOWN finished" in output and "MODULES []" in output, output


def test_tlcli_monitor_command_imports_no_torch(tmp_path):
    """The whole command path (root CLI, plugin registry, monitor), with the terminal faked."""
    run = logs.write(tmp_path / "ft", logs.finished_run())
    output = run_python(WATCH + f"""
import sys, types
import tlcli.cli.monitor as monitor_cmd
from tlcli.tui import app as tui_app

tty = types.SimpleNamespace(isatty=lambda: True)
monitor_cmd.sys = types.SimpleNamespace(stdin=tty, stdout=tty)
tui_app.MonitorApp.run = lambda self: asyncio.run(watch(self))
from tlcli.cli import main
try:
    main(["monitor", {str(run)!r}])
except SystemExit as done:
    print("EXIT", done.code)
print("MODULES", sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}))
""")
    assert "SHOWN finished" in output and "EXIT 0" in output and "MODULES []" in output, output
