"""`tlcli agents solve | replay | teams`. Only typer and the standard library at top level: this module is
imported on every `tlcli` start; the work is imported inside each command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from tlcli.cli import options

agents_app = typer.Typer(
    name="agents",
    help="Teams of LLM agents that plan, solve and check each other, with allow-listed tools and budgets.\n\n"
    "Example: tlcli agents solve \"What is 17 * 23 + 4?\" --llm openai:http://127.0.0.1:8000/v1#MODEL "
    "--tools calculator",
    no_args_is_help=True,
)

DEFAULT_MAX_TURNS = 12
DEFAULT_MAX_TOTAL_TOKENS = 20_000
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_REPLY_TOKENS = 512
SCRIPTED_NOTE = "scripted model answers: no language model is available offline"
TOOLS_HELP = ("Tools, comma-separated or repeated: calculator, files:DIR (read-only), rag:INDEX_DIR (rag plugin), "
              "mcp:'COMMAND ARGS'#TOOL,TOOL (an MCP server over stdio, its tools allow-listed by name; it takes "
              "the rest of its --tools value).")


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")


@agents_app.command("teams")
def teams(
    show: Optional[str] = typer.Option(None, "--show", help="Print one team's TOML (a built-in name or a file)."),
    json_output: bool = options.json_(),
) -> None:
    """List the built-in teams, or print one with --show.

    Example: tlcli agents teams --show plan-solve-critique
    """
    from tlcli.output import emit_json, print_table
    from tlcli_agents.teams import builtin_teams, load_team, team_path

    if show:
        team = load_team(show)
        if json_output:
            emit_json(team.model_dump())
        else:
            sys.stdout.write(team_path(show).read_text(encoding="utf-8"))
            sys.stdout.flush()
        return
    rows = []
    for name in builtin_teams():
        team = load_team(name)
        roles = " -> ".join(f"{r.name}{'x' + str(r.n) if r.n > 1 else ''}" for r in team.roles)
        stop = f"{team.stop.by or 'any'} says {team.stop.mention}" if team.stop else f"after {team.answer_from}"
        rows.append({"name": name, "roles": roles, "stop": stop, "description": team.description})
    if json_output:
        for row in rows:
            emit_json(row)
        return
    print_table("agent teams", ["name", "roles", "stop", "description"],
                [[r["name"], r["roles"], r["stop"], r["description"]] for r in rows])


def _split_tools(values: Optional[List[str]]) -> list[str]:
    """``--tools`` values (repeatable), each comma-separated; an ``mcp:`` spec takes the rest of its value,
    so its own allow-list (``mcp:CMD#a,b``) keeps its commas."""
    specs: list[str] = []
    for value in values or []:
        rest = value
        while rest:
            part, _, tail = rest.partition(",")
            if part.strip().startswith("mcp:"):
                specs.append(rest.strip())
                break
            if part.strip():
                specs.append(part.strip())
            rest = tail
    return specs


def _read_task(task: str) -> str:
    from tlcli.errors import UsageError

    text = sys.stdin.read() if task == "-" else task
    if not text.strip():
        raise UsageError("the task is empty; pass it as an argument or on stdin with -")
    return text.strip()


@agents_app.command("solve")
def solve(
    task: str = typer.Argument(..., help="The task, or - to read it from stdin."),
    llm: Optional[str] = options.llm(),
    team: str = typer.Option("plan-solve-critique", "--team", help="plan-solve-critique, debate, or a team .toml file."),
    tools: Optional[List[str]] = typer.Option(None, "--tools", help=TOOLS_HELP),
    max_turns: int = typer.Option(DEFAULT_MAX_TURNS, "--max-turns", min=1, help="Model-call rounds for the whole team."),
    max_total_tokens: int = typer.Option(DEFAULT_MAX_TOTAL_TOKENS, "--max-total-tokens", min=1,
                                         help="Prompt + completion tokens for the whole team."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", min=0.001, help="Wall-clock seconds for the whole run."),
    max_tokens: Optional[int] = options.max_tokens(),
    temperature: Optional[float] = options.temperature(),
    seed: int = options.seed(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    quiet: bool = options.quiet(),
    tui: bool = options.tui(),
    json_output: bool = options.json_(),
) -> None:
    """Solve a task with a team of agents; every message goes to the run folder's events.jsonl.

    Example: tlcli agents solve "What is 17 * 23 + 4?" --llm hf:./my-model --tools calculator --max-turns 8
    """
    from tlcli.errors import JobFailed, UsageError
    from tlcli.llm import resolve_llm
    from tlcli.output import info
    from tlcli_agents.models import LiveModel
    from tlcli_agents.prices import add_costs, configured_prices
    from tlcli_agents.runfolder import create_run
    from tlcli_agents.solver import Settings, Solver
    from tlcli_agents.teams import load_team, team_path
    from tlcli.paths import STOP_REQUEST_FILE
    from tlcli_agents.termination import StopRequested
    from tlcli_agents.tools import build_toolbox, check_team_tools

    options.check_out_path(out)
    max_tokens = DEFAULT_REPLY_TOKENS if max_tokens is None else max_tokens
    temperature = 0.0 if temperature is None else temperature
    text = _read_task(task)
    chosen = load_team(team)
    specs = _split_tools(tools)
    budgets = {"max_turns": max_turns, "max_total_tokens": max_total_tokens, "timeout_s": timeout}
    termination = _termination(chosen, **budgets)
    info(f"budgets: {max_turns} turns, {max_total_tokens} tokens, {timeout:g} s "
         "(--max-turns, --max-total-tokens, --timeout)")
    prices = configured_prices()
    toolbox = build_toolbox(specs)  # before the model: a bad --tools fails in a second, not after a load
    model = None
    try:
        check_team_tools(chosen, toolbox)
        backend = resolve_llm(llm)
        if getattr(backend, "scripted", False):
            info(SCRIPTED_NOTE)
        model = LiveModel(backend, chosen.parallel)
        config = {"command": "agents solve", "task": text, "llm": backend.spec, "team": team,
                  "team_file": str(team_path(team)), "team_data": chosen.model_dump(), "tools": specs,
                  "budgets": budgets, "settings": {"max_tokens": max_tokens, "temperature": temperature, "seed": seed},
                  "supports_tools": model.supports_tools}
        with create_run(out, overwrite, config) as run:
            info(f"team {chosen.name} on {backend.spec}; tools: {', '.join(toolbox.tools) or 'none'}; run {run.path}")
            emit = _emitter(run, quiet or tui)
            stoppable = termination | StopRequested(run.path / STOP_REQUEST_FILE)
            solver = Solver(chosen, toolbox, model, stoppable, emit, Settings(max_tokens, temperature, seed))
            try:
                if tui:
                    from tlcli.tui.launch import run_with_dashboard

                    outcome = run_with_dashboard(run.path, lambda: solver.solve(text))
                else:
                    outcome = solver.solve(text)
            except (UsageError, KeyboardInterrupt):
                raise
            except Exception as error:  # a backend failure ends the run as failed, with what it had
                outcome = solver.failed(f"{type(error).__name__}: {error}")
            summary = add_costs(outcome.summary(), prices) | {"run": str(run.path)}
            stopped = (run.path / STOP_REQUEST_FILE).exists()
            run.finish("failed" if outcome.status == "failed" else "stopped" if stopped else "finished", metrics=summary)
    finally:
        toolbox.close()
        if model is not None:
            model.close()
    _report(outcome, summary, json_output)
    if outcome.status == "failed":
        raise JobFailed(f"the agents run failed: {outcome.reason}")


def _termination(team, max_turns: int, max_total_tokens: int, timeout_s: float | None):
    from tlcli_agents.termination import MaxTokens, MaxTurns, TextMention, Timeout

    rule = MaxTurns(max_turns) | MaxTokens(max_total_tokens)
    if timeout_s is not None:
        rule = rule | Timeout(timeout_s)
    if team.stop is not None:  # first, so a stop mention wins over a budget used up at the same moment
        rule = TextMention(team.stop.mention, team.stop.by) | rule
    return rule


def _emitter(run, quiet: bool):
    from tlcli.output import info

    def emit(kind: str, data: dict, step: int) -> None:
        run.emit(kind, data, step=step)
        if not quiet:
            info(_transcript_line(data))

    return emit


def _transcript_line(data: dict) -> str:
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


def _report(outcome, summary: dict, json_output: bool) -> None:
    from tlcli.output import emit_json, info
    from tlcli_agents.solver import summary_line, usage_rows

    cost = summary.get("cost")
    info(summary_line(outcome) + (f"; cost {cost['total']:.6g} {cost['currency']}" if cost else ""))
    info("agent        turns  prompt  completion  tools  refused")
    for agent, turns, prompt, completion, calls, refused in usage_rows(outcome):
        info(f"{agent:<12} {turns:>5}  {prompt:>6}  {completion:>10}  {calls:>5}  {refused:>7}")
    if json_output:
        emit_json(summary)
    else:
        print(outcome.answer if outcome.answer is not None else "", flush=True)


@agents_app.command("replay")
def replay(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'tlcli agents solve'."),
    team: Optional[str] = typer.Option(None, "--team", help="Replay with another team (default: the recorded one)."),
    tools: Optional[List[str]] = typer.Option(None, "--tools", help="Run these tools for real, as for solve (default: "
                                              "the recorded results; nothing the run folder names is run)."),
    json_output: bool = options.json_(),
) -> None:
    """Re-run a recorded task against its recorded model answers (no backend): same tool calls, same result,
    or the first step where the replay diverges.

    Example: tlcli agents replay runs/agents-20261202-101500 --json
    """
    from tlcli.errors import JobFailed
    from tlcli.output import emit_json, info
    from tlcli_agents.replay import replay_run

    result = replay_run(run_dir, team=team, tool_specs=_split_tools(tools) if tools is not None else None)
    if result["replay"] == "exact":
        info(f"replay matches the recording: {result['steps']} messages, status {result['status']}")
    else:
        where = result["diverged_at"]
        info(f"replay diverges at message {where['index']}: recorded {where['recorded']}; replayed {where['replayed']}")
    if json_output:
        emit_json(result)
    else:
        print(result["answer"] if result["answer"] is not None else "", flush=True)
    if result["replay"] != "exact":
        raise JobFailed(f"the replay diverged from {run_dir} at message {result['diverged_at']['index']}")
