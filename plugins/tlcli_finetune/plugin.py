"""Registration only: the command is declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="finetune",
    commands={"finetune": ("tlcli_finetune.cli:FINETUNE",
                           "Fine-tune a pretrained vision backbone with its lower layers frozen.")},
    help_panel="Fine-tuning",
    predictors={"image-classifier": "tlcli_finetune.predictor:load_predictor"},
    description="Fine-tune a pretrained vision backbone with frozen lower layers.",
)
