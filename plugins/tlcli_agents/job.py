"""The jobs of `tlcli agents ...`. Agent messages, answers and team files are shown through the Report:
escaped on a terminal (a model's OSC 52 or colour codes are printed as ``\\x1b``...), data with --json."""

from __future__ import annotations

import sys
from pathlib import Path

import tlcli.llm as llms
from tlcli.console.errors import UsageError
from tlcli.runs.paths import STOP_REQUEST_FILE
from tlcli_agents.config import DEFAULT_REPLY_TOKENS, ReplayConfig, SolveConfig, TeamsConfig
from tlcli_agents.models import LiveModel
from tlcli_agents.prices import add_costs, configured_prices
from tlcli_agents.replay import replay_run
from tlcli_agents.solver import Settings, Solver, summary_line, usage_rows
from tlcli_agents.teams import builtin_teams, load_team, team_path
from tlcli_agents.termination import MaxTokens, MaxTurns, StopRequested, TextMention, Timeout
from tlcli_agents.tools import build_toolbox, check_team_tools

SCRIPTED_NOTE = "scripted model answers: no language model is available offline"
USAGE_HEADER = "agent        turns  prompt  completion  tools  refused"


# --- teams ------------------------------------------------------------------------------------------------

def teams_job(cfg: TeamsConfig, run, report) -> dict:
    """`tlcli agents teams`: the built-in teams (a record each), or one team's TOML with --show."""
    if cfg.show:
        team = load_team(cfg.show)
        report.record(team.model_dump())
        report.text(team_path(cfg.show).read_text(encoding="utf-8"))
        return {"team": team.name, "roles": len(team.roles)}
    rows = []
    for name in builtin_teams():
        team = load_team(name)
        roles = " -> ".join(f"{r.name}{'x' + str(r.n) if r.n > 1 else ''}" for r in team.roles)
        stop = f"{team.stop.by or 'any'} says {team.stop.mention}" if team.stop else f"after {team.answer_from}"
        rows.append({"name": name, "roles": roles, "stop": stop, "description": team.description})
    for row in rows:
        report.record(row)
    report.table("agent teams", ["name", "roles", "stop", "description"], [list(row.values()) for row in rows])
    return {"teams": len(rows)}


# --- solve ------------------------------------------------------------------------------------------------

def solve_job(cfg: SolveConfig, run, report) -> dict:
    """`tlcli agents solve`: the team's run, every message a ``message`` event of the run folder (and a
    transcript line on stderr); the answer on stdout. The summary's ``status`` is the run's (finished,
    stopped, failed), its ``outcome`` the team's (solved, budget_exhausted, gave_up, failed)."""
    text = read_task(cfg.task)
    team = load_team(cfg.team)
    specs = cfg.tools or []
    max_tokens = DEFAULT_REPLY_TOKENS if cfg.max_tokens is None else cfg.max_tokens
    temperature = 0.0 if cfg.temperature is None else cfg.temperature
    termination = termination_rule(team, cfg.max_turns, cfg.max_total_tokens, cfg.timeout)
    report.info(f"budgets: {cfg.max_turns} turns, {cfg.max_total_tokens} tokens, {cfg.timeout:g} s "
                "(--max-turns, --max-total-tokens, --timeout)")
    prices = configured_prices()
    toolbox = build_toolbox(specs)  # before the model: a bad --tools fails in a second, not after a load
    model = None
    try:
        check_team_tools(team, toolbox)
        backend = llms.resolve_llm(cfg.llm)
        if getattr(backend, "scripted", False):
            report.info(SCRIPTED_NOTE)
        model = LiveModel(backend, team.parallel)
        # config.json as run: the task read, the model and team resolved (what `agents replay` runs again)
        recorded = cfg.model_copy(update={"task": text, "llm": backend.spec, "tools": specs, "max_tokens": max_tokens,
                                          "temperature": temperature, "team_data": team.model_dump(),
                                          "team_file": str(team_path(cfg.team)), "supports_tools": model.supports_tools})
        run.write_config(recorded.model_dump(mode="json"))
        run.start({"model": backend.spec})
        run.stop_on_sigterm()  # SIGTERM ends the run "stopped" after the current turn, with its summary
        report.info(f"team {team.name} on {backend.spec}; tools: {', '.join(toolbox.tools) or 'none'}; run {run.path}")
        stoppable = termination | StopRequested(run.path / STOP_REQUEST_FILE)
        solver = Solver(team, toolbox, model, stoppable, transcript(run, report),
                        Settings(max_tokens, temperature, cfg.seed))
        try:
            outcome = solver.solve(text)
        except (UsageError, KeyboardInterrupt):
            raise
        except Exception as error:  # a backend failure ends the run as failed, with what it had
            outcome = solver.failed(f"{type(error).__name__}: {error}")
    finally:
        toolbox.close()
        if model is not None:
            model.close()
    summary = add_costs(outcome.summary(), prices)
    cost = summary.get("cost")
    report.info(summary_line(outcome) + (f"; cost {cost['total']:.6g} {cost['currency']}" if cost else ""))
    report.info(USAGE_HEADER)
    for agent, turns, prompt, completion, calls, refused in usage_rows(outcome):
        report.info(f"{agent:<12} {turns:>5}  {prompt:>6}  {completion:>10}  {calls:>5}  {refused:>7}")
    report.text(outcome.answer if outcome.answer is not None else "")
    stopped = (run.path / STOP_REQUEST_FILE).exists()
    status = "failed" if outcome.status == "failed" else "stopped" if stopped else "finished"
    result = {"status": status, "outcome": summary.pop("status"), **summary}
    if status == "failed":
        result["error"] = f"the agents run failed: {outcome.reason}"
    return result


def read_task(task: str) -> str:
    text = sys.stdin.read() if task == "-" else task
    if not text.strip():
        raise UsageError("the task is empty; pass it as an argument or on stdin with -")
    return text.strip()


def termination_rule(team, max_turns: int, max_total_tokens: int, timeout_s: float | None):
    rule = MaxTurns(max_turns) | MaxTokens(max_total_tokens)
    if timeout_s is not None:
        rule = rule | Timeout(timeout_s)
    if team.stop is not None:  # first, so a stop mention wins over a budget used up at the same moment
        rule = TextMention(team.stop.mention, team.stop.by) | rule
    return rule


def transcript(run, report):
    """Each message as an event of the run and as a transcript line on stderr (unless --quiet or --tui)."""

    def emit(kind: str, data: dict, step: int) -> None:
        run.emit(kind, data, step=step)
        report.info(transcript_line(data))

    return emit


def transcript_line(data: dict) -> str:
    """One message for people (rich markup escaped; the Report escapes terminal controls)."""
    from rich.markup import escape

    content = " ".join(str(data.get("content") or "").split())
    if len(content) > 240:
        content = content[:237] + "..."
    calls = data.get("tool_calls") or []
    if data.get("role") == "tool":
        head = f"  ↳ {data.get('tool_name') or 'tool call'}"
    else:
        head = f"[{data.get('agent')}]"
    if calls:
        content += " " + " ".join(f"→ {c.get('name')}({c.get('arguments')})" for c in calls)
    return f"[bold]{escape(head)}[/bold] {escape(content)}"


# --- replay -----------------------------------------------------------------------------------------------

def replay_job(cfg: ReplayConfig, run, report) -> dict:
    """`tlcli agents replay`: the recorded run again on its recorded model replies. A replay that diverges
    ends with status failed (exit 1), its summary naming the first differing message."""
    result = replay_run(Path(cfg.run_dir), team=cfg.team, tool_specs=cfg.tools)
    if result["replay"] == "exact":
        report.info(f"replay matches the recording: {result['steps']} messages, status {result['status']}")
    else:
        where = result["diverged_at"]
        report.info(f"replay diverges at message {where['index']}: recorded {where['recorded']}; "
                    f"replayed {where['replayed']}")
    report.text(result["answer"] if result["answer"] is not None else "")
    summary = {"status": "finished" if result["replay"] == "exact" else "failed", "outcome": result.pop("status"),
               "recording": result.pop("run"), **result}
    if result["replay"] != "exact":
        summary["error"] = f"the replay diverged from {cfg.run_dir} at message {result['diverged_at']['index']}"
    return summary
