"""`tlcli vprompt`: options and validation only (nothing heavy imported here; see vprompt.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tlcli.cli import options
from tlcli.errors import UsageError

VPROMPT_HELP = """Learn a visual prompt (Bahng et al. 2022): a padding of --pad learned pixels around every image,
CLIP's weights and the class text embeddings frozen.

DATA is a folder with one subfolder per class, or a CSV manifest (path,label). Trained by the shared engine
(events, `tlcli monitor`, checkpoints, --resume). Saves the prompt and the fixed class embeddings: use them
with `tlcli zeroshot --vprompt RUN_DIR`, `tlcli predict RUN_DIR` or `tlcli evaluate RUN_DIR DATA`.

Examples:

  tlcli vprompt photos/ --pad 30 --epochs 20

  tlcli vprompt photos/ --shots 16 --model ViT-B-16 --pretrained laion2b_s34b_b88k
"""

MODEL_HELP = "open_clip name, hf-hub:ORG/NAME, local-dir:DIR, or a model-config .json file."
PRETRAINED_HELP = "Weight tag (default: laion2b_s34b_b79k for ViT-B-32), a weights FILE, or none (random init)."


def vprompt(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="Class folders or a CSV manifest (path,label)."),
    model: str = typer.Option("ViT-B-32", "--model", "-m", help=MODEL_HELP),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help=PRETRAINED_HELP),
    pad: int = typer.Option(30, "--pad", min=1, help="Width of the learned padding, in pixels of the model's input."),
    templates: str = typer.Option("ensemble", "--templates", help="ensemble | single | FILE: the fixed class embeddings."),
    shots: Optional[int] = options.shots(),
    val_split: float = options.val_split(),
    epochs: int = typer.Option(20, "--epochs", min=1),
    lr: float = options.finite_option(0.1, "--lr", low=0.0, low_open=True, help="Learning rate of the prompt pixels."),
    batch_size: int = options.batch_size(32, "Images per training step."),
    seed: int = options.seed(),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the text-embedding cache."),
    max_bad: str = options.max_bad(),
    early_stop: Optional[int] = options.early_stop(),
    save_every: Optional[int] = options.save_every(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    resume: Optional[Path] = options.resume(),
    json_output: bool = options.json_(),
    tui: bool = options.tui(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.data.bad_files import parse_max_bad
    from tlcli.run import Run
    from tlcli_clip.vprompt import VPromptConfig, run_vprompt

    options.require_out_under_torchrun(out, resume)
    if resume is not None:
        options.refuse_changes_on_resume(ctx)
        run = Run.resume(resume, "vprompt", "clip")
        cfg = VPromptConfig(**run.config)
    else:
        if data is None:
            raise UsageError("missing DATA: pass a folder of class subfolders or a CSV manifest (or --resume RUN_DIR)")
        cfg = options.validated(VPromptConfig, data=str(data), model=model, pretrained=pretrained, pad=pad,
                                templates=templates, shots=shots, val_split=val_split, epochs=epochs, lr=lr,
                                batch_size=batch_size, seed=seed, device=device, precision=precision,
                                decode_workers=workers, use_cache=not no_cache, max_bad=parse_max_bad(max_bad),
                                early_stop=early_stop, save_every=save_every)
        options.check_out_path(out)
        run = Run.create("vprompt", out, overwrite=overwrite, plugin="clip", config=cfg.model_dump())

    from tlcli.tui.launch import run_in

    run_in(run, lambda quiet_progress: run_vprompt(cfg, run, resume=resume is not None, json_output=json_output,
                                                   quiet=quiet_progress), tui, quiet)
