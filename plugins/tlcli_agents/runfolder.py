"""Reading an agents run folder back for replay.

An agents run holds config.json (the options of `agents solve` as run: the task, the team as data, tools,
budgets, sampling), events.jsonl (run_start, one ``message`` event per message, tool call and tool result,
run_end) and metrics.json (the summary).
"""

from __future__ import annotations

import json
from pathlib import Path

from tlcli.console.errors import UsageError
from tlcli_agents.config import DEFAULT_MAX_TOTAL_TOKENS, DEFAULT_MAX_TURNS, DEFAULT_REPLY_TOKENS

RUN_NAME = "agents"  # the command recorded in an agents run's run_start event


def read_recording(run_dir: Path) -> tuple[dict, list[dict]]:
    """The config (in the layout replay reads: ``command``, ``task``, ``team_data``, ``tools``, ``budgets``,
    ``settings``, ``supports_tools``) and the events of a finished agents run."""
    from tlcli.runs.events import read_events

    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{run_dir} is not an agents run folder (config.json: {error}); "
                         "pass a folder written by 'tlcli agents solve'") from None
    events = list(read_events(run_dir / "events.jsonl"))
    if isinstance(config, dict) and "budgets" not in config and _started_by(events) == RUN_NAME:
        config = _as_recorded(config)
    if not any(e.get("kind") == "message" for e in events) or not isinstance(config, dict) \
            or config.get("command") != "agents solve":
        raise UsageError(f"{run_dir} holds no agents transcript; pass a folder written by 'tlcli agents solve'")
    return config, events


def _started_by(events: list[dict]) -> str | None:
    for event in events:
        if event.get("kind") == "run_start" and isinstance(event.get("data"), dict):
            return event["data"].get("command")
    return None


def _as_recorded(config: dict) -> dict:
    """A config.json of `agents solve` (its flat options) in the layout replay reads."""
    return {**config, "command": "agents solve", "tools": config.get("tools") or [],
            "budgets": {"max_turns": config.get("max_turns", DEFAULT_MAX_TURNS),
                        "max_total_tokens": config.get("max_total_tokens", DEFAULT_MAX_TOTAL_TOKENS),
                        "timeout_s": config.get("timeout")},
            "settings": {"max_tokens": config.get("max_tokens") or DEFAULT_REPLY_TOKENS,
                         "temperature": config.get("temperature") or 0.0, "seed": config.get("seed")}}
