"""`tlcli pretrain` and `tlcli pseudolabel`: parse and validate options, then hand Tasks to the shared engine.

Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tlcli.cli import options
from tlcli.errors import UsageError

PRETRAIN_EXAMPLE = """
Examples:

  tlcli pretrain photos/ --task simclr --model resnet18 --image-size 64 --epochs 30 --val labelled/

  tlcli pretrain unlabelled/ more/ --task rotation --out runs/rotnet && tlcli finetune few/ --weights runs/rotnet

  tlcli pretrain --resume runs/pretrain-20261202-101500
"""

PSEUDO_EXAMPLE = """
Examples:

  tlcli pseudolabel few_labels/ --unlabelled pool/ --from runs/finetune-20261202-101500 --threshold 0.9

  tlcli pseudolabel few/ --unlabelled pool/ --from runs/rotnet --rounds 4 --per-class-cap 200 --json

  tlcli pseudolabel --resume runs/pseudolabel-20261202-101500
"""


def register(app: typer.Typer) -> None:
    app.command("pretrain", help="Pretrain a vision backbone on unlabelled images with a pretext task.\n\n"
                "rotation (RotNet), jigsaw (3x3 puzzle), simclr (contrastive, NT-Xent) or mae (masked "
                "autoencoder). Writes the backbone's weights (heads dropped) to RUN_DIR/model/ for "
                "`tlcli finetune --weights RUN_DIR`.\n" + PRETRAIN_EXAMPLE)(pretrain)
    app.command("pseudolabel", help="Self-training: label unlabelled images with a model, keep the confident "
                "ones (class-balanced), retrain, repeat.\n\n" + PSEUDO_EXAMPLE)(pseudolabel)


def _common_train(cfg_values: dict, epochs, max_steps, batch_size, lr, weight_decay, seed, device, precision,
                  workers, max_bad, image_size, model, pretrained) -> dict:
    from tlcli.data.bad_files import parse_max_bad

    values = {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "seed": seed, "device": device, "precision": precision,
              "workers": workers, "max_bad": parse_max_bad(max_bad), "image_size": image_size, "model": model,
              "pretrained": pretrained, **cfg_values}
    return {k: v for k, v in values.items() if v is not None}


def pretrain(
    ctx: typer.Context,
    data: Optional[List[Path]] = typer.Argument(None, help="Unlabelled image files or folders (walked recursively)."),
    task: str = typer.Option("rotation", "--task", help="rotation | jigsaw | simclr | mae"),
    val: Optional[Path] = typer.Option(None, "--val", help="A labelled set: its kNN accuracy is measured each epoch."),
    model: str = typer.Option("resnet18", "--model", "-m", help="torchvision name, timm:NAME or clip:NAME."),
    pretrained: str = typer.Option("none", "--pretrained", help="none | default | a weight tag (start point)."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps."),
    batch_size: int = options.batch_size(64),
    lr: float = options.finite_option(1e-3, "--lr", low=0.0, low_open=True, help="Learning rate."),
    weight_decay: float = options.finite_option(0.05, "--weight-decay", low=0.0, help="Weight decay."),
    temperature: float = options.finite_option(0.2, "--temperature", low=0.0, low_open=True,
                                               help="NT-Xent temperature (simclr)."),
    permutations: int = typer.Option(30, "--permutations", min=2, max=1000, help="Jigsaw permutation set size."),
    mask_ratio: float = options.finite_option(0.5, "--mask-ratio", low=0.0, high=0.95, low_open=True,
                                              help="Share of patches hidden (mae)."),
    knn_k: int = typer.Option(20, "--knn-k", min=1, help="Neighbours in the kNN vote on --val."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=8, help="Crop size (default: the model's)."),
    seed: int = options.seed(),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    max_bad: str = options.max_bad(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    resume: Optional[Path] = options.resume(),
    json_output: bool = options.json_(),
    tui: bool = options.tui(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.cli.options import validated
    from tlcli.run import Run
    from tlcli_selfsup.config import PretrainConfig

    options.require_out_under_torchrun(out, resume)
    if resume is not None:
        options.refuse_changes_on_resume(ctx)
        run = Run.resume(resume, "pretrain", "selfsup")
        cfg = validated(PretrainConfig, **run.config)
    else:
        if not data:
            raise UsageError("missing UNLABELLED: pass image files or folders (or --resume RUN_DIR)")
        values = _common_train(
            {"data": [str(d) for d in data], "task": task, "val": str(val) if val else None, "knn_k": knn_k,
             "temperature": temperature, "permutations": permutations, "mask_ratio": mask_ratio,
             "monitor": "knn_accuracy"},
            epochs, max_steps, batch_size, lr, weight_decay, seed, device, precision, workers, max_bad, image_size,
            model, pretrained)
        cfg = validated(PretrainConfig, **values)
        options.check_out_path(out)
        run = Run.create("pretrain", out, overwrite=overwrite, plugin="selfsup", config=cfg.model_dump())
    from tlcli_selfsup.pretrain_run import run_pretrain

    from tlcli.tui.launch import run_in

    run_in(run, lambda quiet_progress: run_pretrain(cfg, run, resume=resume is not None, json_output=json_output,
                                                    quiet=quiet_progress), tui, quiet)


def pseudolabel(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="The labelled images: class folders or a CSV manifest."),
    unlabelled: Optional[Path] = typer.Option(None, "--unlabelled", help="Images without labels (a labelled "
                                              "folder is fine: its labels are only used to report the "
                                              "pseudo-labels' accuracy)."),
    start: Optional[Path] = typer.Option(None, "--from", help="A finetune run (its classifier labels round 1) "
                                         "or a pretrain run (a classifier is first trained from it on DATA)."),
    threshold: float = options.finite_option(0.9, "--threshold", low=0.0, high=1.0,
                                             help="Keep pseudo-labels at least this confident."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="At most this many label-and-retrain rounds."),
    per_class_cap: Optional[int] = typer.Option(None, "--per-class-cap", min=1, help="Keep at most N per class "
                                                "(default: the unlabelled count / classes), most confident first."),
    augment: str = typer.Option("light", "--augment", help="none | light | strong (strong: a noisy student)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Labelled validation data; default: --val-split."),
    val_split: float = options.val_split(),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=8, help="Crop size (default: the run's)."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Training epochs per round."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Optimizer steps per round at most."),
    save_every: Optional[int] = typer.Option(None, "--save-every", min=1, help="Also checkpoint every N steps "
                                             "of a round (what --resume continues from)."),
    batch_size: int = options.batch_size(32),
    lr: float = options.finite_option(1e-3, "--lr", low=0.0, low_open=True, help="Learning rate."),
    weight_decay: float = options.finite_option(0.05, "--weight-decay", low=0.0, help="Weight decay."),
    seed: int = options.seed(),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    max_bad: str = options.max_bad(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    resume: Optional[Path] = options.resume(),
    json_output: bool = options.json_(),
    tui: bool = options.tui(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.artifacts import read_model
    from tlcli.cli.options import validated
    from tlcli.run import Run
    from tlcli_selfsup.config import PseudolabelConfig

    options.require_out_under_torchrun(out, resume)
    if resume is not None:
        options.refuse_changes_on_resume(ctx)
        run = Run.resume(resume, "pseudolabel", "selfsup")
        cfg = validated(PseudolabelConfig, **run.config)
        if workers is not None:  # speed only, never the result
            cfg = cfg.model_copy(update={"workers": workers})
        source = read_model(Path(cfg.start))
    else:
        missing = [name for name, value in (("DATA", data), ("--unlabelled", unlabelled), ("--from", start))
                   if value is None]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}: pass the labelled images, --unlabelled POOL and "
                             "--from RUN (or --resume RUN_DIR)")
        if augment not in ("none", "light", "strong"):
            raise UsageError(f"--augment {augment!r}: use none, light or strong")
        source = read_model(start)
        spec = source.meta.get("model")
        if not isinstance(spec, str):
            raise UsageError(f"--from {start}: its model.json names no vision model; pass a finetune or pretrain run")
        values = _common_train(
            {"data": str(data), "unlabelled": str(unlabelled), "start": str(start), "val": str(val) if val else None,
             "val_split": val_split, "threshold": threshold, "rounds": rounds, "per_class_cap": per_class_cap,
             "augment": augment, "save_every": save_every},
            epochs, max_steps, batch_size, lr, weight_decay, seed, device, precision, workers, max_bad, image_size,
            spec, "none")
        cfg = validated(PseudolabelConfig, **values)
        options.check_out_path(out)
        run = Run.create("pseudolabel", out, overwrite=overwrite, plugin="selfsup", config=cfg.model_dump())
    from tlcli_selfsup.pseudolabel import run_pseudolabel

    from tlcli.tui.launch import run_in

    run_in(run, lambda quiet_progress: run_pseudolabel(cfg, source, run, json_output=json_output,
                                                       quiet=quiet_progress, resume=resume is not None), tui, quiet)
