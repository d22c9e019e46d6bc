"""Registration only: nothing heavy is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_finetune import commands

    commands.register(app)


plugin = Plugin(
    name="finetune",
    help_panel="Fine-tuning",
    register_commands=register_commands,
    predictors={"image-classifier": "tlcli_finetune.predictor:load_predictor"},
    description="Fine-tune a pretrained vision backbone with frozen lower layers.",
)
