"""Registration only: nothing heavy is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_text import commands

    commands.register(app)


plugin = Plugin(
    name="text",
    register_commands=register_commands,
    description="Text zero-shot and probes on a sentence encoder; soft-prompt tuning of frozen models.",
)
