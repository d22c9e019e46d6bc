"""`tlcli zeroshot`, `tlcli probe`, `tlcli coop`, `tlcli compare`: options and validation only.

Every shared flag comes from the option kit (tlcli/cli/options.py); the pydantic config of a command is
built straight from the parsed parameters (``options.config_values(ctx)``). Nothing heavy is imported at
module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tlcli.cli import options
from tlcli.errors import UsageError

MODEL_HELP = "open_clip name, hf-hub:ORG/NAME, local-dir:DIR, or a model-config .json file."
PRETRAINED_HELP = "Weight tag (default: laion2b_s34b_b79k for ViT-B-32), a weights FILE, or none (random init)."
FEATURE_BATCH_HELP = "Images per forward pass (default: 32 on the CPU, 256 on a GPU, where small batches leave it idle)."
DEFAULT_MODEL = "ViT-B-32"  # = tlcli_clip.common.DEFAULT_MODEL (not imported here: it imports pydantic models)
DEFAULT_N_CTX = 16


def register(app: typer.Typer) -> None:
    app.command("zeroshot", help=ZEROSHOT_HELP)(zeroshot)
    app.command("probe", help=PROBE_HELP)(probe)
    app.command("coop", help=COOP_HELP)(coop)
    app.command("compare", help=COMPARE_HELP)(compare)
    from tlcli_clip.vprompt_command import VPROMPT_HELP, vprompt

    app.command("vprompt", help=VPROMPT_HELP)(vprompt)


def _model() -> str:
    return typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP)


def _pretrained():
    return typer.Option(None, "--pretrained", help=PRETRAINED_HELP)


def _no_cache():
    return typer.Option(False, "--no-cache", help="Neither read nor write the feature cache.")


def _labels(labels: Optional[str], labels_file: Optional[Path]) -> list[str] | None:
    if labels is not None and labels_file is not None:
        raise UsageError("pass --labels or --labels-file, not both")
    if labels_file is not None:
        try:
            names = [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"--labels-file {labels_file}: {getattr(error, 'strerror', None) or error}") from None
    elif labels is not None:
        names = [name.strip() for name in labels.split(",")]
    else:
        return None
    names = [name for name in names if name]
    if len(names) < 2:
        raise UsageError("give at least two labels, e.g. --labels cat,dog (or one per line in --labels-file)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"duplicate labels: {', '.join(duplicates)}")
    return names


def _shot_list(value: str) -> list[int]:
    try:
        shots = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        shots = []
    if not shots or any(k < 1 for k in shots):
        raise UsageError(f"--shots {value!r}: expected positive numbers, e.g. 16 or 1,4,16")
    return shots


def _open_run(command: str, cfg, out: Optional[Path], overwrite: bool):
    from tlcli.run import Run

    options.check_out_path(out)
    return Run.create(command, out, overwrite=overwrite, config=cfg.model_dump(), plugin="clip")


# --- zeroshot --------------------------------------------------------------------------------------------

ZEROSHOT_HELP = """Classify images by comparing them with label prompts (no training).

PATHS are image files, folders (recursive) or - (paths on stdin). With --eval, PATHS is one folder with a
subfolder per label, and accuracy is reported.

Examples:

  tlcli zeroshot photos/ --labels cat,dog

  find . -name '*.jpg' | tlcli zeroshot - --labels-file labels.txt --json --top-k 3

  tlcli zeroshot val/ --eval --templates single

  tlcli zeroshot photos/ --prompt runs/coop-20261123-101500
"""


def zeroshot(
    paths: List[str] = typer.Argument(..., help="Image files, folders, or - for paths on stdin."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="Comma-separated labels: cat,dog."),
    labels_file: Optional[Path] = typer.Option(None, "--labels-file", help="One label per line."),
    model: str = _model(),
    pretrained: Optional[str] = _pretrained(),
    templates: str = typer.Option("ensemble", "--templates", help="ensemble | single | FILE (one {} template per line)."),
    prompt: Optional[Path] = typer.Option(None, "--prompt", help="Use the prompts learned by a `tlcli coop` run."),
    vprompt: Optional[Path] = typer.Option(None, "--vprompt", help="Add the visual prompt learned by a `tlcli vprompt` run."),
    top_k: int = options.top_k(),
    threshold: Optional[float] = options.finite_option(None, "--threshold", low=0.0, high=1.0,
                                                       help="Below this probability the label is 'unknown'."),
    evaluate: bool = typer.Option(False, "--eval", help="PATHS is a folder of label subfolders: report accuracy."),
    batch_size: Optional[int] = options.batch_size(help=FEATURE_BATCH_HELP),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    no_cache: bool = _no_cache(),
    max_bad: str = options.max_bad(),
    json_output: bool = options.json_(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.data.bad_files import parse_max_bad

    names = _labels(labels, labels_file)
    if names is None and not evaluate and prompt is None and vprompt is None:
        raise UsageError("no labels: pass --labels cat,dog or --labels-file FILE (or --eval on class folders)")
    if prompt is not None and templates != "ensemble":
        raise UsageError("--prompt uses the learned prompts; drop --templates")
    settings = {"model": model, "pretrained": pretrained, "device": device, "precision": precision,
                "batch_size": batch_size, "workers": workers, "use_cache": not no_cache,
                "max_bad": parse_max_bad(max_bad)}
    if vprompt is not None:
        if prompt is not None:
            raise UsageError("--vprompt and --prompt: pass one of them")
        from tlcli_clip.vprompt import run_vprompt_zeroshot

        run_vprompt_zeroshot(paths, names, vprompt, top_k, threshold, evaluate, settings, json_output, quiet)
        return
    from tlcli_clip.zeroshot import run_zeroshot

    run_zeroshot(paths, names, templates, prompt, top_k, threshold, evaluate, settings, json_output, quiet)


# --- probe -----------------------------------------------------------------------------------------------

PROBE_HELP = """Train a linear probe (logistic regression) on frozen CLIP image features.

DATA is a folder with one subfolder per class, or a CSV manifest (path,label). Features are cached: a second
run over the same images runs no image model at all. The head is saved to RUN_DIR/model/ for
`tlcli predict` and `tlcli evaluate`.

Examples:

  tlcli probe photos/ --shots 16

  tlcli probe photos/ --init zeroshot --val-split 0.3 --json
"""


def probe(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Class folders or a CSV manifest (path,label)."),
    model: str = _model(),
    pretrained: Optional[str] = _pretrained(),
    shots: Optional[int] = options.shots(),
    val_split: float = options.val_split(),
    weight_decay: Optional[float] = options.finite_option(None, "--weight-decay", low=0.0,
                                                          help="Fixed weight decay (default: a sweep on the validation split)."),
    init: str = typer.Option("none", "--init", help="none | zeroshot (start from, and stay near, the label text embeddings)."),
    templates: str = typer.Option("ensemble", "--templates", help="Templates for --init zeroshot."),
    seed: int = options.seed(),
    batch_size: Optional[int] = options.batch_size(help=FEATURE_BATCH_HELP),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    no_cache: bool = _no_cache(),
    max_bad: str = options.max_bad(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    json_output: bool = options.json_(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli_clip.common import ProbeConfig
    from tlcli_clip.probe import run_probe

    cfg = options.validated(ProbeConfig, **options.config_values(ctx))
    with _open_run("probe", cfg, out, overwrite) as run:
        run_probe(cfg, run, json_output, quiet)


# --- coop ------------------------------------------------------------------------------------------------

COOP_HELP = """Learn soft prompts (CoOp): context vectors before the class names, the whole CLIP model frozen.

Trained by the shared engine (events, `tlcli monitor`, checkpoints, --resume) on cached image features. Saves
only the prompt vectors (KBs) and the labels: use them with `tlcli zeroshot --prompt RUN_DIR`,
`tlcli predict RUN_DIR` or `tlcli evaluate RUN_DIR DATA`.

Examples:

  tlcli coop photos/ --shots 16 --epochs 50

  tlcli coop photos/ --init "a photo of a" --class-specific
"""


def coop(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="Class folders or a CSV manifest (path,label)."),
    model: str = _model(),
    pretrained: Optional[str] = _pretrained(),
    n_ctx: int = typer.Option(DEFAULT_N_CTX, "--n-ctx", min=1, max=64, help="Number of learned context vectors."),
    init: Optional[str] = typer.Option(None, "--init", help='Initialise the context from a phrase, e.g. "a photo of a".'),
    class_specific: bool = typer.Option(False, "--class-specific", help="One context per class (CSC)."),
    shots: Optional[int] = options.shots(),
    val_split: float = options.val_split(),
    epochs: int = typer.Option(50, "--epochs", min=1),
    lr: float = options.finite_option(2e-3, "--lr", low=0.0, low_open=True, help="Learning rate of the context."),
    batch_size: int = options.batch_size(32, help="Images per training step, and per feature-extraction pass."),
    seed: int = options.seed(),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    no_cache: bool = _no_cache(),
    max_bad: str = options.max_bad(),
    early_stop: Optional[int] = options.early_stop(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    resume: Optional[Path] = options.resume(),
    json_output: bool = options.json_(),
    tui: bool = options.tui(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.run import Run
    from tlcli_clip.coop import CoopConfig, run_coop

    if resume is not None:
        options.refuse_changes_on_resume(ctx)
        run = Run.resume(resume, "coop", "clip")
        try:
            cfg = CoopConfig(**run.config)
        except Exception:
            run.close()
            raise UsageError(f"--resume {resume}: its config.json is not a tlcli coop configuration") from None
        if workers is not None:  # decoding threads: speed only
            cfg = cfg.model_copy(update={"decode_workers": workers})
    else:
        if data is None:
            raise UsageError("missing DATA: pass a folder of class subfolders or a CSV manifest (or --resume RUN_DIR)")
        values = options.config_values(ctx, rename={"workers": "decode_workers"},
                                       exclude=options.NOT_CONFIG)
        cfg = options.validated(CoopConfig, **values)
        run = _open_run("coop", cfg, out, overwrite)

    from tlcli.tui.launch import run_in

    run_in(run, lambda quiet_progress: run_coop(cfg, run, resume=resume is not None, json_output=json_output,
                                                quiet=quiet_progress), tui, quiet)


# --- compare ---------------------------------------------------------------------------------------------

COMPARE_HELP = """Zero-shot vs linear probe vs CoOp on the same seeded split: accuracy, trainable parameters, time.

Examples:

  tlcli compare photos/ --shots 1,4,16

  tlcli compare photos/ --shots 4 --coop-epochs 20 --json
"""


def compare(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Class folders or a CSV manifest (path,label)."),
    model: str = _model(),
    pretrained: Optional[str] = _pretrained(),
    shots: str = typer.Option("1,4,16", "--shots", help="Comma-separated images per class for the trained methods."),
    val_split: float = options.val_split(),
    templates: str = typer.Option("ensemble", "--templates"),
    n_ctx: int = typer.Option(DEFAULT_N_CTX, "--n-ctx", min=1, max=64, help="CoOp context vectors."),
    coop_epochs: int = typer.Option(30, "--coop-epochs", min=1),
    no_coop: bool = typer.Option(False, "--no-coop", help="Skip CoOp (the slowest method)."),
    vprompt: bool = typer.Option(False, "--vprompt", help="Also learn a visual prompt (runs the image tower every step)."),
    vprompt_epochs: int = typer.Option(10, "--vprompt-epochs", min=1),
    vprompt_pad: int = typer.Option(30, "--vprompt-pad", min=1, help="Width of the visual prompt, in pixels."),
    seed: int = options.seed(),
    batch_size: Optional[int] = options.batch_size(help=FEATURE_BATCH_HELP + " CoOp trains with 32 when not given."),
    device: str = options.device(),
    precision: str = options.precision(),
    workers: Optional[int] = options.workers(),
    no_cache: bool = _no_cache(),
    max_bad: str = options.max_bad(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    json_output: bool = options.json_(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli_clip.common import CompareConfig
    from tlcli_clip.compare import run_compare

    cfg = options.validated(CompareConfig, **{**options.config_values(ctx), "shots": _shot_list(shots)})
    with _open_run("compare", cfg, out, overwrite) as run:
        run_compare(cfg, run, json_output, quiet)
