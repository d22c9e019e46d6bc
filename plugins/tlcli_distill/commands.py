"""`tlcli distill`: parse and validate options, then hand a Task to the shared engine.

Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tlcli.cli import options
from tlcli.errors import UsageError

HELP = """Distil a teacher into a small, fast student: a trained run, or CLIP's zero-shot classifier.

The student learns the teacher's outputs softened at --temperature T, mixed with the labels:
alpha * T^2 * KL(teacher || student) + (1 - alpha) * cross-entropy. Images in --unlabelled have no label:
only the teacher's outputs teach them (alpha = 1), so a CLIP teacher with --labels needs no labelled images
at all. The teacher's outputs on each image are computed once and cached (augmented views, with --augment,
run the frozen teacher on the fly). The student's run folder works with `tlcli predict` and `tlcli evaluate`.

Examples:

  tlcli distill photos/ --teacher runs/finetune-20261123-101500 --student mobilenet_v3_small

  tlcli distill --unlabelled shots/ --teacher clip:ViT-B-32 --labels cat,dog,bird --val val/ --student resnet18

  tlcli distill --resume runs/distill-20261202-101500
"""


def register(app: typer.Typer) -> None:
    app.command("distill", help=HELP)(distill)


def distill(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="Labelled images: class folders or a CSV manifest (path,label)."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="A trained run folder, or clip:MODEL (zero-shot over --labels)."),
    teacher_pretrained: Optional[str] = typer.Option(None, "--teacher-pretrained", help="Weights of a clip: teacher: a tag, a FILE, or none."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="Class names of a clip: teacher, comma-separated (default: DATA's classes)."),
    templates: str = typer.Option("ensemble", "--templates", help="Prompt templates of a clip: teacher: ensemble | single | FILE."),
    unlabelled: Optional[Path] = typer.Option(None, "--unlabelled", help="A folder of images without labels, taught by the teacher alone."),
    val: Optional[Path] = typer.Option(None, "--val", help="Labelled validation images (default: --val-split of DATA)."),
    val_split: float = options.val_split(),
    student: str = typer.Option("mobilenet_v3_small", "--student", help="torchvision name (resnet18, mobilenet_v3_small, ...), timm:NAME or clip:NAME."),
    pretrained: str = typer.Option("default", "--pretrained", help="The student's starting weights: default | none | a weight tag."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="The student's local starting weights (safetensors, state dict, or a run's model/)."),
    temperature: float = options.finite_option(4.0, "--temperature", low=0.0, low_open=True, high=100.0, help="Softening temperature T of both models' outputs."),
    alpha: float = options.finite_option(0.7, "--alpha", low=0.0, high=1.0, help="Weight of the teacher's soft targets (1 - alpha on the labels)."),
    lr: float = options.finite_option(1e-3, "--lr", low=0.0, low_open=True, help="Learning rate."),
    weight_decay: float = options.finite_option(0.05, "--weight-decay", low=0.0, help="Weight decay (never on biases and norms)."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps."),
    batch_size: int = options.batch_size(32, "Images per training step."),
    augment: str = typer.Option("none", "--augment", help="none (teacher outputs cached) | light | strong (the teacher runs on each view)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=8, help="The student's crop size (default: the model's)."),
    seed: int = options.seed(),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    early_stop: Optional[int] = options.early_stop(),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the teacher-output cache."),
    max_bad: str = options.max_bad(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    resume: Optional[Path] = options.resume(),
    json_output: bool = options.json_(),
    tui: bool = options.tui(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.data.bad_files import parse_max_bad
    from tlcli.run import Run

    options.require_out_under_torchrun(out, resume)
    if resume is not None:
        options.refuse_changes_on_resume(ctx)
        from tlcli_distill.config import DistillConfig

        run = Run.resume(resume, "distill", "distill")
        cfg = DistillConfig(**run.config)
    else:
        if teacher is None:
            raise UsageError("missing --teacher: pass a trained run folder, or clip:MODEL with --labels")
        if augment not in ("none", "light", "strong"):
            raise UsageError(f"--augment {augment!r}: expected none, light or strong")
        names = _labels(labels)
        if data is None and unlabelled is None:
            raise UsageError("no images: pass labelled DATA, --unlabelled DIR, or both")
        if teacher.startswith("clip:") and names is None and data is None:
            raise UsageError("--teacher clip:MODEL needs class names: pass --labels a,b,c (or labelled DATA)")
        from tlcli_distill.config import DistillConfig

        cfg = options.validated(
            DistillConfig, data=_str(data), unlabelled=_str(unlabelled), val=_str(val), val_split=val_split,
            teacher=teacher, teacher_pretrained=teacher_pretrained, labels=names, templates=templates,
            student=student, pretrained=pretrained, weights=_str(weights), temperature=temperature, alpha=alpha,
            lr=lr, weight_decay=weight_decay, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
            augment=augment, image_size=image_size, seed=seed, device=device, precision=precision,
            workers=workers, early_stop=early_stop, use_cache=not no_cache, max_bad=parse_max_bad(max_bad))
        options.check_out_path(out)
        run = Run.create("distill", out, overwrite=overwrite, plugin="distill", config=cfg.model_dump())
    from tlcli_distill.run import run_distill

    from tlcli.tui.launch import run_in

    run_in(run, lambda quiet_progress: run_distill(cfg, run, resume=resume is not None, json_output=json_output,
                                                   quiet=quiet_progress), tui, quiet)


def _str(path: Optional[Path]) -> Optional[str]:
    return None if path is None else str(path)


def _labels(value: Optional[str]) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if len(names) < 2:
        raise UsageError("--labels: give at least two class names, e.g. --labels cat,dog")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"--labels: duplicate names: {', '.join(duplicates)}")
    return names
