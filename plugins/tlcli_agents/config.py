"""The options of `tlcli agents ...`: the one declaration of each command's flags (see tlcli/fields.py)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from tlcli.fields import LLMOptions, Options, Seeded, option

DEFAULT_TEAM = "plan-solve-critique"
DEFAULT_MAX_TURNS = 12
DEFAULT_MAX_TOTAL_TOKENS = 20_000
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_REPLY_TOKENS = 512
TOOLS_HELP = ("Tools, comma-separated or repeated: calculator, files:DIR (read-only), rag:INDEX_DIR (rag plugin), "
              "mcp:'COMMAND ARGS'#TOOL,TOOL (an MCP server over stdio, its tools allow-listed by name; it takes "
              "the rest of its --tools value).")
PANEL_BUDGETS = "Budgets"


def split_tools(values: Any) -> list[str]:
    """``--tools`` values (repeatable), each comma-separated; an ``mcp:`` spec takes the rest of its value,
    so its own allow-list (``mcp:CMD#a,b``) keeps its commas."""
    specs: list[str] = []
    for value in [values] if isinstance(values, str) else values or []:
        rest = str(value)
        while rest:
            part, _, tail = rest.partition(",")
            if part.strip().startswith("mcp:"):
                specs.append(rest.strip())
                break
            if part.strip():
                specs.append(part.strip())
            rest = tail
    return specs


class ToolsOption(Options):
    tools: list[str] | None = option(None, TOOLS_HELP, repeat=True)

    @field_validator("tools", mode="before")
    @classmethod
    def _split(cls, values):
        return None if values is None else split_tools(values)


class TeamsConfig(Options):
    show: str | None = option(None, "Print one team's TOML (a built-in name or a file).")


class SolveConfig(ToolsOption, LLMOptions, Seeded):
    task: str = option(..., "The task, or - to read it from stdin.", argument=True, metavar="TASK",
                       missing="pass the task as an argument, or - to read it from stdin")
    team: str = option(DEFAULT_TEAM, "plan-solve-critique, debate, or a team .toml file.")
    max_turns: int = option(DEFAULT_MAX_TURNS, "Model-call rounds for the whole team.", ge=1, panel=PANEL_BUDGETS)
    max_total_tokens: int = option(DEFAULT_MAX_TOTAL_TOKENS, "Prompt + completion tokens for the whole team.", ge=1,
                                   panel=PANEL_BUDGETS)
    timeout: float = option(DEFAULT_TIMEOUT_S, "Wall-clock seconds for the whole run.", ge=0.001, panel=PANEL_BUDGETS)
    # Recorded by the run (config.json), never typed: what `agents replay` needs to run the team again.
    team_data: dict | None = option(None, flag=False)
    team_file: str | None = option(None, flag=False)
    supports_tools: bool | None = option(None, flag=False)


class ReplayConfig(ToolsOption):
    run_dir: str = option(..., "A run folder written by 'tlcli agents solve'.", argument=True, metavar="RUN_DIR",
                          missing="pass the run folder of an agents solve run")
    team: str | None = option(None, "Replay with another team (default: the recorded one).")
    tools: list[str] | None = option(None, "Run these tools for real, as for solve (default: the recorded "
                                     "results; nothing the run folder names is run).", repeat=True)
