"""`tlcli finetune`: parse and validate options, then hand a Task to the shared engine.

Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from tlcli.cli.options import given_options, validated
from tlcli.errors import UsageError

EXAMPLE = """
Examples:

  tlcli finetune photos/ --model resnet50 --freeze-until layer3 --epochs 5

  tlcli finetune train.csv --val val/ --weights pretrained.safetensors --lr 3e-4 --lr-decay 0.5 --unfreeze-every 2

  tlcli finetune --resume runs/finetune-20261123-101500
"""


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
    val_split: float = typer.Option(0.2, "--val-split", help="Fraction held out for validation (stratified, seeded)."),
    model: str = typer.Option("resnet50", "--model", "-m", help="torchvision name, timm:NAME or clip:NAME."),
    pretrained: str = typer.Option("default", "--pretrained", help="default | none | a weight tag."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Local weights: safetensors, a state dict, or a run's model/ folder."),
    freeze_until: Optional[str] = typer.Option(None, "--freeze-until", help="Freeze every block up to and including this one (see `tlcli layers`)."),
    train_bn: bool = typer.Option(False, "--train-bn", help="Let frozen BatchNorm layers update their statistics."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate of the head (the last block)."),
    lr_decay: float = typer.Option(1.0, "--lr-decay", help="Multiply the lr by this for each earlier block."),
    weight_decay: float = typer.Option(0.05, "--weight-decay", help="Weight decay (never on biases and norms)."),
    unfreeze_every: Optional[int] = typer.Option(None, "--unfreeze-every", help="Unfreeze the next block down every E epochs."),
    epochs: int = typer.Option(10, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    accumulate: int = typer.Option(1, "--accumulate", help="Micro-batches per optimizer step."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | sgd"),
    scheduler: str = typer.Option("cosine", "--scheduler", help="cosine | onecycle | constant"),
    warmup: float = typer.Option(0.0, "--warmup", help="Warm-up steps (or a fraction of all steps if < 1)."),
    clip_grad: Optional[float] = typer.Option(None, "--clip-grad", help="Clip the gradient norm to this."),
    augment: str = typer.Option("light", "--augment", help="none | light | strong"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Crop size (default: the model's)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data-loading worker processes."),
    early_stop: Optional[int] = typer.Option(None, "--early-stop", help="Stop after this many epochs without improvement."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Also checkpoint every N steps."),
    log_every: Optional[int] = typer.Option(None, "--log-every", help="Write a metric event every N steps (default: ~500 per run)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    domain_adapt: Optional[Path] = typer.Option(None, "--domain-adapt", help="Unlabelled target-domain images: "
                                                "domain-adversarial training (DANN)."),
    dann_weight: float = typer.Option(1.0, "--dann-weight", help="Scale of the DANN gradient reversal (its "
                                      "schedule rises from 0 to this)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Train once per seed (1,2,3) into RUN_DIR/seed-N "
                                        "and report mean ± std."),
    max_bad: str = typer.Option("5%", "--max-bad", help="Abort (exit 2) if more unreadable files than this."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/finetune-<time>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run from its newest checkpoint."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of options (keys are flag names)."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    tui: bool = typer.Option(False, "--tui", help="Show the live dashboard while training."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    from tlcli.data.bad_files import parse_max_bad

    options = {
        "data": str(data) if data else None, "val": str(val) if val else None, "val_split": val_split,
        "model": model, "pretrained": pretrained, "weights": str(weights) if weights else None,
        "freeze_until": freeze_until, "train_bn": train_bn, "lr": lr, "lr_decay": lr_decay,
        "weight_decay": weight_decay, "unfreeze_every": unfreeze_every, "epochs": epochs, "max_steps": max_steps,
        "batch_size": batch_size, "accumulate": accumulate, "optimizer": optimizer, "scheduler": scheduler,
        "warmup": warmup, "clip_grad": clip_grad, "augment": augment, "image_size": image_size, "seed": seed,
        "device": device, "precision": precision, "workers": workers, "early_stop": early_stop,
        "save_every": save_every, "log_every": log_every, "compile": compile_model, "max_bad": parse_max_bad(max_bad),
        "domain_adapt": str(domain_adapt) if domain_adapt else None, "dann_weight": dann_weight,
    }
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and out is None and resume is None:
        raise UsageError("with torchrun, pass --out RUN_DIR so every process writes to the same run folder")
    if resume is not None:
        run_dir, cfg = _resume_config(resume, options, given_options(ctx))
    else:
        cfg = _build_config(options, given_options(ctx), config)
        from tlcli.paths import new_run_dir

        run_dir = new_run_dir("finetune", out)
    from tlcli_finetune.run import run_finetune

    def job():
        if seeds:
            from tlcli_finetune.dann import parse_seeds, run_seeds

            return run_seeds(cfg, parse_seeds(seeds), run_dir, lambda c, d: run_finetune(
                c, d, resume=False, json_output=False, quiet=quiet or tui), json_output)
        return run_finetune(cfg, run_dir, resume=resume is not None, json_output=json_output,
                            quiet=quiet or tui)

    if tui:
        from tlcli.tui.launch import run_with_dashboard

        run_with_dashboard(run_dir, job)
    else:
        job()


_FLAG_NAMES = {"compile_model": "compile"}


def _build_config(options: dict, given: set[str], config_file: Path | None):
    from tlcli_finetune.config import FinetuneConfig

    merged = {k: v for k, v in options.items() if v is not None}
    if config_file is not None:
        file_values = _read_toml(config_file)
        explicit = {_FLAG_NAMES.get(k, k) for k in given}
        merged = {**merged, **{k: v for k, v in file_values.items() if k not in explicit}}
    if not merged.get("data"):
        raise UsageError("missing DATA: pass a folder of class subfolders or a CSV manifest (or --resume RUN_DIR)")
    return validated(FinetuneConfig, **merged)


def _read_toml(path: Path) -> dict:
    import tomllib

    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--config {path}: not valid TOML ({error})") from None
    return {key.replace("-", "_"): value for key, value in values.items()}


def _resume_config(run_dir: Path, options: dict, given: set[str]):
    from tlcli_finetune.config import FinetuneConfig

    saved = run_dir / "config.json"
    if not saved.is_file():
        raise UsageError(f"--resume {run_dir}: no config.json there; pass the folder of a tlcli finetune run")
    changed = given - {"resume", "json_output", "tui", "quiet", "workers", "data", "log_every"}
    if changed:
        flags = ", ".join("--" + _FLAG_NAMES.get(n, n).replace("_", "-") for n in sorted(changed))
        raise UsageError(f"--resume continues the run exactly as configured; drop {flags}")
    values = json.loads(saved.read_text(encoding="utf-8"))
    if "workers" in given:  # only affects speed, never results
        values["workers"] = options["workers"]
    return run_dir, FinetuneConfig(**values)
