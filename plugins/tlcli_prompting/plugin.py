"""Registration only: nothing heavy is imported here (the command module imports typer and the stdlib)."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_prompting import commands

    commands.register(app)


plugin = Plugin(
    name="prompting",
    register_commands=register_commands,
    description="Chain-of-thought prompt templates, self-consistency voting and accuracy on an LLM backend.",
)
