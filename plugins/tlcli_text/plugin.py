"""Registration only: nothing heavy is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_text import commands

    commands.register(app)


plugin = Plugin(
    name="text",
    register_commands=register_commands,
    # `tlcli predict` / `tlcli evaluate` load these run kinds (tlcli/cli/predict_texts.py prints them).
    predictors={"text-probe": "tlcli_text.predictors:load_probe",
                "soft-prompt": "tlcli_text.predictors:load_soft_prompt"},
    description="Text zero-shot and probes on a sentence encoder; soft-prompt tuning of frozen models.",
)
