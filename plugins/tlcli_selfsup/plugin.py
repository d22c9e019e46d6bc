"""Registration only: the commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="selfsup",
    commands={
        "pretrain": ("tlcli_selfsup.cli:PRETRAIN",
                     "Pretrain a vision backbone on unlabelled images with a pretext task."),
        "pseudolabel": ("tlcli_selfsup.cli:PSEUDOLABEL",
                        "Self-training: label unlabelled images with a model, keep the confident ones "
                        "(class-balanced), retrain, repeat."),
    },
    description="Learn from unlabelled images: pretext-task pretraining (rotation, jigsaw, SimCLR, masked "
    "autoencoder) and pseudo-labelling rounds.",
    help_panel="Unlabelled images",
)
