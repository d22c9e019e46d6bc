"""Building a solver around the fake backend (tests import this module by name)."""

from __future__ import annotations

from tlcli_agents.models import LiveModel
from tlcli_agents.solver import Settings, Solver
from tlcli_agents.teams import load_team
from tlcli_agents.termination import MaxTokens, MaxTurns, TextMention, Timeout
from tlcli_agents.tools import build_toolbox


def make_solver(llm, team="plan-solve-critique", tools=(), max_turns=12, max_tokens=100_000, timeout=60.0,
                parallel=None):
    chosen = load_team(team)
    if parallel:
        chosen = chosen.model_copy(update={"parallel": parallel})
    rule = MaxTurns(max_turns) | MaxTokens(max_tokens) | Timeout(timeout)
    if chosen.stop:
        rule = TextMention(chosen.stop.mention, chosen.stop.by) | rule
    events = []
    solver = Solver(chosen, build_toolbox(list(tools)), LiveModel(llm, chosen.parallel), rule,
                    lambda kind, data, step: events.append(dict(data, step=step)), Settings(max_tokens=64))
    return solver, events
