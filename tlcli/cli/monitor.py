"""`tlcli monitor [PATH]`: the live dashboard over a run folder or a folder of runs.

Textual is imported inside the command, so `tlcli --help` stays fast; the dashboard never imports torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tlcli.errors import UsageError
from tlcli.paths import RUNS_ROOT

# Rich help keeps single newlines, so each paragraph is one string.
HELP = "\n\n".join([
    "Watch training live in the terminal: loss and validation curves, learning rates, throughput, memory, "
    "which layers are frozen or trainable, warnings and checkpoints.",
    "PATH is a run folder (its events.jsonl is tailed; the log may not exist yet) or a folder of runs "
    "(default ./runs: a table of runs; enter opens one, c on two runs overlays their curves). Only the run "
    "folder is read, so it works on a finished run, a crashed one, or one synced from another machine.",
    "Keys: q quit, p pause updates, s ask the run to stop (it checkpoints and ends as stopped), ? help.",
    "Example:",
    "    tlcli monitor runs/finetune-20261123-101500",
])


def monitor(
    path: Path = typer.Argument(
        None, help="A run folder, or a folder of runs (default ./runs).", show_default=False
    ),
) -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("tlcli monitor needs a terminal (stdin and stdout); for scripts read "
                         "RUN/events.jsonl (JSON Lines) instead")
    if path is None:
        path = RUNS_ROOT
        if not path.is_dir():
            raise UsageError(f"no runs folder ./{RUNS_ROOT} here; pass a run folder: tlcli monitor RUN_DIR")
    elif path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file; pass its run folder (the folder holding events.jsonl)")

    from tlcli.tui.app import build_monitor_app

    build_monitor_app(path).run()


def register(app: typer.Typer) -> None:
    app.command("monitor", help=HELP, no_args_is_help=False)(monitor)
