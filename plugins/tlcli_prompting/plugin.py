"""Registration only: the commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="prompting",
    commands={
        "prompt list": ("tlcli_prompting.cli:LIST", "List the prompt templates: built-in ones and those saved in "
                        "$TLCLI_HOME/prompt-templates/."),
        "prompt show": ("tlcli_prompting.cli:SHOW",
                        "Render the prompts without a model (for pipelines and for checking a template)."),
        "prompt run": ("tlcli_prompting.cli:RUN",
                       "Answer each question with a template on an LLM; streams one line per question."),
        "prompt eval": ("tlcli_prompting.cli:EVAL",
                        "Score templates against gold answers: accuracy, with non-answers counted apart."),
    },
    groups={"prompt": "Chain-of-thought prompting: templates, self-consistency voting, accuracy against gold "
                      "answers."},
    description="Chain-of-thought prompt templates, self-consistency voting and accuracy on an LLM backend.",
)
