"""`tlcli monitor [PATH]`: the live dashboard over a run folder or a folder of runs.

Textual is imported inside the command, so `tlcli --help` stays fast; the dashboard never imports torch.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import typer

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.runs.paths import RUNS_ROOT

# Rich help keeps single newlines, so each paragraph is one string.
HELP = "\n\n".join([
    "Watch training live in the terminal: loss and validation curves, learning rates, throughput, memory, "
    "which layers are frozen or trainable, warnings and checkpoints.",
    "PATH is a run folder (its events.jsonl is tailed; the log may not exist yet) or a folder of runs "
    "(default ./runs: a table of runs; enter opens one, c on two runs overlays their curves). Only the run "
    "folder is read, so it works on a finished run, a crashed one, or one synced from another machine.",
    "A PATH that does not exist is an error naming the closest run folder; --wait watches for a run that "
    "has not started yet.",
    "Keys: q quit, p pause updates, s ask the run to stop (it checkpoints and ends as stopped), ? help.",
    "Example:",
    "    tlcli monitor runs/finetune-20261123-101500",
])


def monitor(
    path: Path = typer.Argument(
        None, help="A run folder, or a folder of runs (default ./runs).", show_default=False
    ),
    wait: bool = typer.Option(False, "--wait", help="PATH may not exist yet: wait for the run to start."),
) -> None:
    if path is None:
        path = RUNS_ROOT
        if not path.is_dir():
            raise UsageError(f"no runs folder ./{RUNS_ROOT} here; pass a run folder: tlcli monitor RUN_DIR")
    elif path.exists() and not path.is_dir():
        raise UsageError(f"{display_path(path)} is a file; pass its run folder (the folder holding events.jsonl)")
    elif not path.exists() and not wait:
        raise UsageError(f"no run folder {display_path(path)}{_did_you_mean(path)}; "
                         "pass --wait to watch for a run that has not started yet")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("tlcli monitor needs a terminal (stdin and stdout); for scripts read "
                         "RUN/events.jsonl (JSON Lines) instead")

    from tlcli.tui.app import build_monitor_app

    build_monitor_app(path).run()
    if not path.exists():  # --wait, and the run never came: say so after the screen is gone
        print(f"tlcli: {display_path(path)} never appeared while the monitor ran", file=sys.stderr)


def _did_you_mean(path: Path) -> str:
    """`` (did you mean runs/x?)`` naming the closest folder next to ``path``, or where to look."""
    parent = path.parent
    try:
        names = sorted(entry.name for entry in os.scandir(parent) if entry.is_dir())
    except OSError:
        return f" (and no folder {display_path(parent)})" if str(parent) != "." else ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {display_path(parent / close[0])}?)"
    from tlcli.tui.runs import is_run_dir  # plain Python, no Textual

    runs = [name for name in names if is_run_dir(parent / name)]
    if runs:
        listed = ", ".join(display_path(n) for n in runs[:5]) + (", ..." if len(runs) > 5 else "")
        return f" (run folders in {display_path(parent)}: {listed})"
    return ""


# Declared in the core's command table (tlcli/cli/__init__.py); a Typer app: the dashboard has no summary.
MONITOR = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")


MONITOR.command("monitor", help=HELP, no_args_is_help=False,
                context_settings={"help_option_names": ["-h", "--help"]})(monitor)
