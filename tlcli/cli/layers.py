"""`tlcli layers MODEL`: a model's top-level blocks, the names --freeze-until accepts; with
``--lora-targets``, the modules LoRA would adapt."""

from __future__ import annotations

from tlcli.cli.command import Command
from tlcli.fields import CommaList, Options, option

HELP = """Show a model's blocks: the names --freeze-until accepts.

Blocks in input-to-output order with parameter counts. Works offline: structure only, no weights. With
--json, one line a block ({"index", "name", "params", "trainable"}), then the summary.

--lora-targets PATTERNS lists the modules `--lora` would adapt instead (names or globs; `default` stands
for the default targets: attention projections and MLP linears, or a CNN's spatial convolutions), with what
each adapts and its adapter parameters at --lora RANK; with --json, one line a module ({"name", "adapts",
"params", "adapter_params"})."""

DEFAULT_RANK = 8


class LayersConfig(Options):
    model: str = option(..., "torchvision name (resnet50), timm:NAME, clip:NAME, or a run folder.", argument=True,
                        metavar="MODEL", missing="pass a model name or a run folder")
    freeze_until: str | None = option(None, "Show which blocks this would freeze.")
    lora_targets: CommaList | None = option(None, "Show the modules these patterns adapt with --lora (`default`: "
                                            "the default targets).", metavar="PATTERNS")
    lora: int | None = option(None, f"With --lora-targets: count adapter parameters at this rank (default "
                              f"{DEFAULT_RANK}).", ge=1, metavar="RANK")


def run_layers(cfg: LayersConfig, run, report) -> dict:
    from tlcli.engine.params import freeze_until as apply_freeze
    from tlcli.engine.params import block_name, list_blocks
    from tlcli.console.errors import UsageError
    from tlcli.models.vision import build_vision_model

    model, freeze_until = _model_of_run(cfg.model), cfg.freeze_until
    if cfg.lora_targets:
        if freeze_until is not None:
            raise UsageError("--freeze-until and --lora-targets: --lora freezes the whole base; pass one of them")
        return _lora_targets(model, cfg.lora_targets, cfg.lora or DEFAULT_RANK, report)
    if cfg.lora is not None:
        raise UsageError("--lora RANK counts adapter parameters of --lora-targets; pass --lora-targets default "
                         "(or patterns) too")
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


def _lora_targets(model: str, patterns: list[str], rank: int, report) -> dict:
    """The modules ``--lora-targets`` matches in ``model`` built as `tlcli finetune` builds it (a new
    head, which trains in full and is never adapted), with the adapter parameters PEFT gives each."""
    from tlcli.adapters.lora import apply_lora, describe_target, resolve_targets
    from tlcli.console.errors import UsageError
    from tlcli.models.vision import build_vision_model

    built = build_vision_model(model, "none", num_classes=2)
    network, heads = built.model, built.head_names
    targets = resolve_targets(network, patterns, heads)
    if not targets:
        raise UsageError(f"--lora-targets {','.join(patterns)}: no module of {model} matches; use names or globs "
                         f"from `tlcli layers {model}` (e.g. default, or a leaf name such as qkv, fc1, conv2)")
    kinds = {name: describe_target(network.get_submodule(name)) for name in targets}
    sizes = {name: sum(p.numel() for p in network.get_submodule(name).parameters()) for name in targets}
    try:
        apply_lora(network, rank, targets=targets, keep_training=heads)
    except ValueError as error:
        raise UsageError(str(error)) from None
    added = {name: sum(p.numel() for n, p in network.get_submodule(name).named_parameters() if ".lora_" in
                       f".{n}") for name in targets}
    rows = [{"name": name, "adapts": kinds[name], "params": sizes[name], "adapter_params": added[name]}
            for name in targets]
    for row in rows:
        report.record(row)
    total = sum(added.values())
    report.table(f"{model}: {len(rows)} modules adapted, {total:,} adapter parameters at rank {rank}",
                 ["module", "adapts", "params", "adapter params"],
                 [[r["name"], r["adapts"], f"{r['params']:,}", f"{r['adapter_params']:,}"] for r in rows])
    return {"status": "finished", "model": model, "lora_targets": patterns, "rank": rank, "modules": len(rows),
            "adapter_params": total, "heads": heads}


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
    "tlcli layers runs/pretrain-20261202-101500      # the backbone a run trained (e.g. tlcli pretrain)",
    "tlcli layers timm:vit_base_patch16_224 --lora-targets default",
    "tlcli layers resnet50 --lora-targets 'layer4.*' --lora 4"))
