"""Registration only: commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="tune",
    commands={},
    description="Instruction tuning (sft) and preference tuning (dpo) of causal language models.",
    help_panel="Language-model tuning",
)
