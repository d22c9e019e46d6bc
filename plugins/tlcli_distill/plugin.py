"""Registration only: nothing heavy is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_distill import commands

    commands.register(app)


# No predictor of its own: the student is exported as an "image-classifier" model (the fine-tuning
# layout), so `tlcli predict` / `tlcli evaluate` load it like any fine-tuned run.
plugin = Plugin(
    name="distill",
    register_commands=register_commands,
    description="Distil a trained run or a CLIP zero-shot classifier into a small, fast student.",
    help_panel="Distillation",
)
