"""``tlcli agents replay``: the recorded run again, with the recorded model replies instead of a backend.

Tool calls get their recorded results: nothing named by the run folder is run (its config.json may have
been edited, or come from someone else, and an ``mcp:`` spec there is a command line). With ``--tools``
the user names the tools to run for real, so a changed tool shows up as a different message. The two
transcripts are compared message by message and the first difference is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from tlcli.console.errors import UsageError
from tlcli.console.secrets import redact
from tlcli_agents.models import ReplayExhausted, ReplayModel
from tlcli_agents.runfolder import read_recording
from tlcli_agents.solver import Settings, Solver
from tlcli_agents.teams import Team, load_team
from tlcli_agents.termination import MaxTokens, MaxTurns, TextMention
from tlcli_agents.tools import RecordedToolBox, build_toolbox

COMPARED = ("agent", "role", "content", "tool_name", "tool_calls")


def _key(data: dict) -> dict:
    key = {k: data.get(k) for k in COMPARED}
    key["tool_calls"] = [{"name": c.get("name"), "arguments": c.get("arguments")} for c in key["tool_calls"] or []]
    return key


def _short(data: dict | None) -> str:
    if data is None:
        return "nothing (the transcript ended)"
    text = " ".join(str(data.get("content") or "").split())
    what = f"{data.get('agent')} {data.get('role')}" + (f" {data['tool_name']}" if data.get("tool_name") else "")
    calls = "".join(f" -> {c['name']}({c['arguments']})" for c in data.get("tool_calls") or [])
    return f"{what}: {text[:120]!r}{calls}"


def first_difference(recorded: list[dict], replayed: list[dict]) -> dict | None:
    for index in range(max(len(recorded), len(replayed))):
        a = _key(recorded[index]) if index < len(recorded) else None
        b = _key(replayed[index]) if index < len(replayed) else None
        if a != b:
            return {"index": index, "recorded": _short(a), "replayed": _short(b)}
    return None


def replay_run(run_dir: Path, team: str | None = None, tool_specs: list[str] | None = None) -> dict:
    config, events = read_recording(run_dir)
    recorded = [e["data"] for e in events if e.get("kind") == "message" and isinstance(e.get("data"), dict)]
    chosen = load_team(team) if team else _recorded_team(run_dir, config)
    if not isinstance(config.get("task"), str):
        raise UsageError(f"{run_dir}/config.json names no task; pass a folder written by 'tlcli agents solve'")
    budgets = config.get("budgets", {})
    metrics = _metrics(Path(run_dir))
    # No clock in a replay: it stops where the recording stopped, or earlier by the team's own rule.
    rule = MaxTurns(budgets.get("max_turns", 10**9)) | MaxTokens(budgets.get("max_total_tokens", 10**12))
    if metrics.get("turns") is not None and metrics.get("status") != "failed":  # a failed one runs out instead
        rule = rule | MaxTurns(int(metrics["turns"]))
    if chosen.stop is not None:
        rule = TextMention(chosen.stop.mention, chosen.stop.by) | rule
    settings = config.get("settings", {})
    replayed: list[dict] = []
    # Only the user's own --tools are built (and may start processes); the folder's specs are never run.
    toolbox = RecordedToolBox(events) if tool_specs is None else build_toolbox(tool_specs)
    try:
        solver = Solver(chosen, toolbox, ReplayModel(events, bool(config.get("supports_tools"))), rule,
                        # Masked as the recording was (Run.emit masks secrets), so the two compare.
                        lambda kind, data, step: replayed.append(json.loads(json.dumps(redact(data)))),
                        Settings(settings.get("max_tokens", 512), settings.get("temperature", 0.0), settings.get("seed")))
        try:
            outcome = solver.solve(config["task"])
            exhausted = None
        except ReplayExhausted as error:
            outcome, exhausted = solver.failed(str(error)), str(error)
    finally:
        toolbox.close()
    difference = first_difference(recorded, replayed)
    if difference is None and exhausted and metrics.get("status") == "failed":
        exhausted = None  # the recorded run failed at this very call: the replay ends where it did
        outcome.reason = metrics.get("reason", outcome.reason)
    if difference is None and exhausted:
        difference = {"index": len(replayed), "recorded": "nothing (the recording ended)", "replayed": exhausted}
    if difference is None and metrics and (metrics.get("status"), metrics.get("answer")) != (outcome.status, outcome.answer):
        difference = {"index": len(replayed), "recorded": f"{metrics.get('status')}: {metrics.get('answer')!r}",
                      "replayed": f"{outcome.status}: {outcome.answer!r}"}
    summary = outcome.summary()
    summary.pop("reason", None)
    return {"replay": "exact" if difference is None else "diverged", "steps": len(replayed),
            "diverged_at": difference, **summary, "run": str(run_dir)}


def _recorded_team(run_dir: Path, config: dict) -> Team:
    try:
        return Team(**config["team_data"])
    except (KeyError, TypeError, ValidationError) as error:
        raise UsageError(f"{run_dir}/config.json: its team_data is not a team ({type(error).__name__}); "
                         "replay with --team NAME_OR_FILE") from None


def _metrics(run_dir: Path) -> dict:
    try:
        data = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if isinstance(data, dict) and "outcome" in data:  # the summary's status is the run's; the team's is its outcome
        data = {**data, "status": data["outcome"]}
    return data if isinstance(data, dict) else {}
