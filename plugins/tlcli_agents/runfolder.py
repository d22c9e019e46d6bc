"""The run folder of an agents run (through the core Run) and reading one back for replay.

An agents run holds config.json (the task, the team as data, tools, budgets, sampling), events.jsonl
(run_start, one ``message`` event per message, tool call and tool result, run_end) and metrics.json (the
summary).
"""

from __future__ import annotations

import json
from pathlib import Path

from tlcli.errors import UsageError


def create_run(out: Path | None, overwrite: bool, config: dict):
    """A new run folder for ``agents solve``, started (its run_start event written)."""
    from tlcli.run import Run

    run = Run.create("agents", out, overwrite=overwrite, plugin="agents", config=config)
    run.start({"model": config.get("llm")})
    run.stop_on_sigterm()  # SIGTERM ends the run "stopped" after the current turn, with its summary
    return run


def read_recording(run_dir: Path) -> tuple[dict, list[dict]]:
    """The config and the events of a finished agents run (for replay)."""
    from tlcli.events import read_events

    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{run_dir} is not an agents run folder (config.json: {error}); "
                         "pass a folder written by 'tlcli agents solve'") from None
    events = list(read_events(run_dir / "events.jsonl"))
    if not any(e.get("kind") == "message" for e in events) or config.get("command") != "agents solve":
        raise UsageError(f"{run_dir} holds no agents transcript; pass a folder written by 'tlcli agents solve'")
    return config, events
