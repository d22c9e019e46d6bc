"""Registration only: nothing heavy is imported here (the command module imports typer and the stdlib)."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_agents import commands

    commands.register(app)


plugin = Plugin(
    name="agents",
    register_commands=register_commands,
    description="Multi-agent task solving: teams as TOML, allow-listed tools, budgets, transcripts, replay.",
)
