"""`tlcli finetune`: parse and validate options, then hand a Task to the shared engine.

Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tlcli.cli import options
from tlcli.errors import UsageError

EXAMPLE = """
Examples:

  tlcli finetune photos/ --model resnet50 --freeze-until layer3 --epochs 5

  tlcli finetune train.csv --val val/ --weights pretrained.safetensors --lr 3e-4 --lr-decay 0.5 --unfreeze-every 2

  tlcli finetune --resume runs/finetune-20261123-101500
"""

# Parameters whose Python name is not the flag's (and the config field's) name.
RENAMED = {"compile_model": "compile"}
# Free to change on --resume: they change speed and display, never the result.
RESUME_ALLOWED = options.PRESENTATION | {"log_every"}


def register(app: typer.Typer) -> None:
    app.command(
        "finetune",
        help="Fine-tune a pretrained vision backbone with its lower layers frozen.\n\n"
        "DATA is a folder with one subfolder per class, or a CSV manifest (path,label).\n" + EXAMPLE,
    )(finetune)


def finetune(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="Class folders or a CSV manifest (path,label)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (same layout); default: --val-split."),
    val_split: float = options.val_split(),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="torchvision name, timm:NAME or clip:NAME "
                                        "(default: the model of --weights RUN_DIR, else resnet50)."),
    pretrained: str = typer.Option("default", "--pretrained", help="default | none | a weight tag."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Local weights: safetensors, a state dict, or a run's model/ folder."),
    freeze_until: Optional[str] = typer.Option(None, "--freeze-until", help="Freeze every block up to and including this one (see `tlcli layers`)."),
    train_bn: bool = typer.Option(False, "--train-bn", help="Let frozen BatchNorm layers update their statistics."),
    lr: float = options.finite_option(1e-3, "--lr", low=0.0, low_open=True, help="Learning rate of the head (the last block)."),
    lr_decay: float = options.finite_option(1.0, "--lr-decay", low=0.0, low_open=True, high=1.0, help="Multiply the lr by this for each earlier block."),
    weight_decay: float = options.finite_option(0.05, "--weight-decay", low=0.0, help="Weight decay (never on biases and norms)."),
    unfreeze_every: Optional[int] = typer.Option(None, "--unfreeze-every", min=1, help="Unfreeze the next block down every E epochs."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps."),
    batch_size: int = options.batch_size(32, help="Images per micro-batch."),
    accumulate: int = typer.Option(1, "--accumulate", min=1, help="Micro-batches per optimizer step."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | sgd"),
    scheduler: str = typer.Option("cosine", "--scheduler", help="cosine | onecycle | constant"),
    warmup: float = options.finite_option(0.0, "--warmup", low=0.0, help="Warm-up steps (or a fraction of all steps if < 1)."),
    clip_grad: Optional[float] = options.finite_option(None, "--clip-grad", low=0.0, low_open=True, help="Clip the gradient norm to this."),
    skip_nonfinite: bool = typer.Option(False, "--skip-nonfinite", help="Skip steps whose loss is inf/NaN instead of failing the run."),
    augment: str = typer.Option("light", "--augment", help="none | light | strong"),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=8, help="Crop size (default: the model's)."),
    seed: int = options.seed(),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    early_stop: Optional[int] = options.early_stop(),
    save_every: Optional[int] = typer.Option(None, "--save-every", min=1, help="Also checkpoint every N steps."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Write a metric event every N steps (default: ~500 per run)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    domain_adapt: Optional[Path] = typer.Option(None, "--domain-adapt", help="Unlabelled target-domain images: "
                                                "domain-adversarial training (DANN)."),
    dann_weight: float = options.finite_option(1.0, "--dann-weight", low=0.0, help="Scale of the DANN gradient "
                                               "reversal (its schedule rises from 0 to this)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Train once per seed (1,2,3) into RUN_DIR/seed-N "
                                        "and report mean ± std."),
    max_bad: str = options.max_bad(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    resume: Optional[Path] = options.resume(),
    config: Optional[Path] = options.config_file(),
    json_output: bool = options.json_(),
    tui: bool = options.tui(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.run import Run
    from tlcli_finetune.config import check_image_size

    options.require_out_under_torchrun(out, resume)
    if resume is not None:
        options.refuse_changes_on_resume(ctx, RESUME_ALLOWED, RENAMED)
        run = Run.resume(resume, "finetune", "finetune")
        cfg = _saved_config(run, workers)
    else:
        cfg = _build_config(ctx, config)
        check_image_size(cfg)
        options.check_out_path(out)
        run = Run.create("finetune", out, overwrite=overwrite, config=cfg.model_dump(), plugin="finetune")
    from tlcli.tui.launch import run_in
    from tlcli_finetune.run import run_finetune

    def job(quiet_progress: bool):
        if cfg.seeds:
            from tlcli_finetune.seeds import run_seeds

            return run_seeds(cfg, run, lambda c, r, resumed: run_finetune(
                c, r, resume=resumed, json_output=False, quiet=quiet_progress, outer_runs=(run.path,)), json_output,
                resume=resume is not None)
        return run_finetune(cfg, run, resume=resume is not None, json_output=json_output, quiet=quiet_progress)

    run_in(run, job, tui, quiet)


def _build_config(ctx: typer.Context, config_file: Path | None):
    from tlcli.config_file import read_options_file
    from tlcli_finetune.config import FinetuneConfig

    from tlcli_finetune.seeds import parse_seeds

    values = {k: v for k, v in options.config_values(ctx, rename=RENAMED).items() if v is not None}
    if config_file is not None:
        explicit = {RENAMED.get(k, k) for k in options.given_options(ctx)}
        values.update({k: v for k, v in read_options_file(config_file).items() if k not in explicit})
    if values.get("seeds") is not None:
        values["seeds"] = parse_seeds(values["seeds"])
    if not values.get("data"):
        raise UsageError("missing DATA: pass a folder of class subfolders or a CSV manifest (or --resume RUN_DIR)")
    return options.validated(FinetuneConfig, **values)


def _saved_config(run, workers: int | None):
    from tlcli_finetune.config import FinetuneConfig

    values = run.config
    if workers is not None:  # only affects speed, never results
        values["workers"] = workers
    try:
        return FinetuneConfig(**values)
    except Exception:
        run.close()
        raise UsageError(f"--resume {run.path}: its config.json is not a tlcli finetune configuration; "
                         "pass the folder of a finetune run") from None
