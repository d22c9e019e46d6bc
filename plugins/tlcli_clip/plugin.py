"""Registration only: nothing heavy is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_clip import commands

    commands.register(app)


plugin = Plugin(
    name="clip",
    help_panel="CLIP",
    register_commands=register_commands,
    predictors={
        "clip-probe": "tlcli_clip.predictor:load_probe_predictor",
        "clip-coop": "tlcli_clip.predictor:load_coop_predictor",
        "clip-vprompt": "tlcli_clip.vprompt:load_vprompt_predictor",
    },
    description="CLIP zero-shot, linear probes on cached features, CoOp soft prompts, and compare.",
)
