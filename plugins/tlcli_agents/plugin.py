"""Registration only: the commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="agents",
    commands={
        "agents teams": ("tlcli_agents.cli:TEAMS", "List the built-in teams, or print one with --show."),
        "agents solve": ("tlcli_agents.cli:SOLVE", "Solve a task with a team of agents; every message goes to the "
                         "run folder's events.jsonl."),
        "agents replay": ("tlcli_agents.cli:REPLAY", "Re-run a recorded task against its recorded model answers (no "
                          "backend): same tool calls, same result, or the first step where the replay diverges."),
    },
    groups={"agents": "Teams of LLM agents that plan, solve and check each other, with allow-listed tools and "
                      "budgets."},
    description="Multi-agent task solving: teams as TOML, allow-listed tools, budgets, transcripts, replay.",
)
