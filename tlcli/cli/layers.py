"""`tlcli layers MODEL`: a model's top-level blocks, the names --freeze-until accepts."""

from __future__ import annotations

from typing import Optional

import typer

EXAMPLE = """
Examples:

  tlcli layers resnet50

  tlcli layers timm:vit_small_patch16_224 --json

  tlcli layers clip:ViT-B-32 --freeze-until visual.transformer.resblocks.8

  tlcli layers runs/pretrain-20261202-101500      # the backbone a run trained (e.g. tlcli pretrain)
"""


def register(app: typer.Typer) -> None:
    app.command("layers", help="Show a model's blocks: the names --freeze-until accepts.\n\n"
                "Blocks in input-to-output order with parameter counts. Works offline: structure only, "
                "no weights.\n" + EXAMPLE)(layers)


def layers(
    model: str = typer.Argument(..., help="torchvision name (resnet50), timm:NAME, clip:NAME, or a run folder."),
    freeze_until: Optional[str] = typer.Option(None, "--freeze-until", help="Show which blocks this would freeze."),
    json_output: bool = typer.Option(False, "--json", help="JSON Lines on stdout, one block a line."),
) -> None:
    from tlcli.engine.params import freeze_until as apply_freeze
    from tlcli.engine.params import block_name, list_blocks
    from tlcli.errors import UsageError
    from tlcli.models.vision import build_vision_model
    from tlcli.output import emit_json, print_table

    model = _model_of_run(model)
    # A CLIP image tower gets its classification head here too, so the names are exactly the ones
    # `tlcli finetune --freeze-until` takes (visual.transformer.resblocks.8, not transformer.resblocks.8).
    built = build_vision_model(model, "none", num_classes=2 if model.startswith("clip:") else None)
    blocks = list_blocks(built.model)
    if freeze_until is not None:
        try:
            apply_freeze(blocks, block_name(blocks, freeze_until))
        except ValueError:
            raise UsageError(f"--freeze-until {freeze_until!r} is not a block of {model}; valid names: "
                             f"{', '.join(b.name for b in blocks)}") from None
    rows = [{"index": i, "name": b.name, "params": b.num_params, "trainable": b.trainable}
            for i, b in enumerate(blocks)]
    if json_output:
        for row in rows:
            emit_json(row)
        return
    total = sum(r["params"] for r in rows)
    print_table(f"{model}: {len(rows)} blocks, {total:,} parameters", ["#", "block", "params", "trainable"],
                [[r["index"], r["name"], f"{r['params']:,}", "yes" if r["trainable"] else "frozen"] for r in rows])


def _model_of_run(model: str) -> str:
    """A run folder (or its model/) stands for the architecture it exported (model.json's ``model``)."""
    from pathlib import Path

    from tlcli.artifacts import read_model
    from tlcli.errors import UsageError

    if not Path(model).is_dir():
        return model
    spec = read_model(Path(model)).meta.get("model")
    if not isinstance(spec, str):
        raise UsageError(f"{model}: its model.json names no vision model; pass a model name instead")
    return spec
