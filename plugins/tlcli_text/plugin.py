"""Registration only: the commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="text",
    commands={
        "text zeroshot": ("tlcli_text.cli:ZEROSHOT", "Classify texts by similarity to label descriptions."),
        "text probe": ("tlcli_text.cli:PROBE",
                       "Logistic regression on frozen sentence embeddings of DATA (CSV text,label)."),
        "text finetune": ("tlcli_text.cli:FINETUNE",
                          "Fine-tune the sentence encoder + a linear head on DATA (CSV text,label), in full or "
                          "with --lora."),
        "text compare": ("tlcli_text.cli:COMPARE",
                         "The adaptation ladder on DATA: zero-shot, probe, soft prompt, LoRA, full fine-tuning."),
        "text predict": ("tlcli_text.cli:PREDICT",
                         "Classify texts with a text run (the same as `tlcli predict RUN TEXTS`)."),
        "text evaluate": ("tlcli_text.cli:EVALUATE",
                          "Score a text run on labelled data (the same as `tlcli evaluate RUN DATA`)."),
        "prompt-tune train": ("tlcli_text.cli:PROMPT_TUNE",
                              "Train a soft prompt (the default: `tlcli prompt-tune DATA` is the same)."),
        "prompt-tune predict": ("tlcli_text.cli:PROMPT_TUNE_PREDICT",
                                "Run a soft-prompt run on texts: class labels or generated text."),
    },
    groups={"text": "Text transfer on a sentence encoder (all-MiniLM-L6-v2 by default, offline): zero-shot, "
                    "probe, fine-tuning (full or LoRA).",
            "prompt-tune": "Soft-prompt tuning (Lester et al. 2021): learn N virtual-token embeddings in front "
                           "of a frozen model."},
    group_defaults={"prompt-tune": "train"},
    # `tlcli predict` / `tlcli evaluate` load these run kinds.
    predictors={"text-probe": "tlcli_text.predictors:load_probe",
                "soft-prompt": "tlcli_text.predictors:load_soft_prompt",
                "text-classifier": "tlcli_text.predictors:load_text_classifier"},
    description="Text zero-shot, probes and fine-tuning (full or LoRA) of a sentence encoder; soft-prompt tuning "
                "of frozen models.",
)
