"""Registration only: nothing heavy is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_selfsup import commands

    commands.register(app)


plugin = Plugin(
    name="selfsup",
    register_commands=register_commands,
    description="Learn from unlabelled images: pretext-task pretraining (rotation, jigsaw, SimCLR, masked "
    "autoencoder) and pseudo-labelling rounds.",
    help_panel="Unlabelled images",
)
