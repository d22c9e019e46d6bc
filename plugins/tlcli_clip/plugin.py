"""Registration only: the commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="clip",
    help_panel="CLIP",
    commands={
        "zeroshot": ("tlcli_clip.cli:ZEROSHOT", "Classify images by comparing them with label prompts (no training)."),
        "probe": ("tlcli_clip.cli:PROBE", "Train a linear probe (logistic regression) on frozen CLIP image features."),
        "coop": ("tlcli_clip.cli:COOP", "Learn soft prompts (CoOp), CLIP frozen; or with --lora, LoRA adapters in "
                 "both towers (CLIP-LoRA)."),
        "compare": ("tlcli_clip.cli:COMPARE", "Zero-shot vs linear probe vs CoOp (and CLIP-LoRA) on one seeded split: "
                    "accuracy, parameters, time."),
        "vprompt": ("tlcli_clip.cli:VPROMPT", "Learn a visual prompt: a padding of --pad learned pixels around every "
                    "image, CLIP frozen."),
    },
    predictors={
        "clip-probe": "tlcli_clip.predictor:load_probe_predictor",
        "clip-coop": "tlcli_clip.predictor:load_coop_predictor",
        "clip-vprompt": "tlcli_clip.vprompt:load_vprompt_predictor",
        "clip-lora": "tlcli_clip.lora:load_lora_predictor",
    },
    description="CLIP zero-shot, linear probes on cached features, CoOp soft prompts, CLIP-LoRA, visual prompts, "
                "and compare.",
)
