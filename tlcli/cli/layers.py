"""`tlcli layers MODEL`: a model's top-level blocks, the names --freeze-until accepts."""

from __future__ import annotations

from tlcli.cli.command import Command
from tlcli.fields import Options, option

HELP = """Show a model's blocks: the names --freeze-until accepts.

Blocks in input-to-output order with parameter counts. Works offline: structure only, no weights. With
--json, one line a block ({"index", "name", "params", "trainable"}), then the summary."""


class LayersConfig(Options):
    model: str = option(..., "torchvision name (resnet50), timm:NAME, clip:NAME, or a run folder.", argument=True,
                        metavar="MODEL", missing="pass a model name or a run folder")
    freeze_until: str | None = option(None, "Show which blocks this would freeze.")


def run_layers(cfg: LayersConfig, run, report) -> dict:
    from tlcli.engine.params import freeze_until as apply_freeze
    from tlcli.engine.params import block_name, list_blocks
    from tlcli.console.errors import UsageError
    from tlcli.models.vision import build_vision_model

    model, freeze_until = _model_of_run(cfg.model), cfg.freeze_until
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
    for row in rows:
        report.record(row)
    total = sum(r["params"] for r in rows)
    report.table(f"{model}: {len(rows)} blocks, {total:,} parameters", ["#", "block", "params", "trainable"],
                 [[r["index"], r["name"], f"{r['params']:,}", "yes" if r["trainable"] else "frozen"] for r in rows])
    return {"status": "finished", "model": model, "blocks": len(rows), "params": total,
            "trainable_params": sum(r["params"] for r in rows if r["trainable"])}


def _model_of_run(model: str) -> str:
    """A run folder (or its model/) stands for the architecture it exported (model.json's ``model``)."""
    from pathlib import Path

    from tlcli.runs.artifacts import read_model
    from tlcli.console.errors import UsageError

    if not Path(model).is_dir():
        return model
    spec = read_model(Path(model)).meta.get("model")
    if not isinstance(spec, str):
        raise UsageError(f"{model}: its model.json names no vision model; pass a model name instead")
    return spec


LAYERS = Command("layers", LayersConfig, run_layers, HELP, kind="tool", examples=(
    "tlcli layers resnet50", "tlcli layers timm:vit_small_patch16_224 --json",
    "tlcli layers clip:ViT-B-32 --freeze-until visual.transformer.resblocks.8",
    "tlcli layers runs/pretrain-20261202-101500      # the backbone a run trained (e.g. tlcli pretrain)"))
