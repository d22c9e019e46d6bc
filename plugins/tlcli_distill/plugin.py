"""Registration only: the command is declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

# No predictor of its own: the student is exported as an "image-classifier" model (the fine-tuning
# layout), so `tlcli predict` / `tlcli evaluate` load it like any fine-tuned run.
plugin = Plugin(
    name="distill",
    commands={"distill": ("tlcli_distill.cli:DISTILL",
                          "Distil a teacher into a small, fast student: a trained run, or CLIP's zero-shot "
                          "classifier.")},
    description="Distil a trained run or a CLIP zero-shot classifier into a small, fast student.",
    help_panel="Distillation",
)
