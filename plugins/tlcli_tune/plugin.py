"""Registration only: commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="tune",
    commands={
        "sft": ("tlcli_tune.cli:SFT", "Supervised fine-tuning of a causal language model on chats: the loss on the "
                "assistant's tokens only."),
        "dpo": ("tlcli_tune.cli:DPO", "Preference tuning of a causal language model on chosen/rejected pairs: DPO, "
                "IPO or SimPO."),
        "generate": ("tlcli_tune.cli:GENERATE", "One reply of a tuned model (or any hf: model), streamed on a "
                     "terminal."),
    },
    description="Instruction tuning (sft) and preference tuning (dpo) of causal language models.",
    help_panel="Language-model tuning",
)
