"""`tlcli zeroshot`, `tlcli probe`, `tlcli coop`, `tlcli compare`: options and validation only.

Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tlcli.cli.options import validated
from tlcli.errors import UsageError

MODEL_HELP = "open_clip name, hf-hub:ORG/NAME, local-dir:DIR, or a model-config .json file."
PRETRAINED_HELP = "Weight tag (default: laion2b_s34b_b79k for ViT-B-32), a weights FILE, or none (random init)."


def register(app: typer.Typer) -> None:
    app.command("zeroshot", help=ZEROSHOT_HELP)(zeroshot)
    app.command("probe", help=PROBE_HELP)(probe)
    app.command("coop", help=COOP_HELP)(coop)
    app.command("compare", help=COMPARE_HELP)(compare)
    from tlcli_clip.vprompt_command import VPROMPT_HELP, vprompt

    app.command("vprompt", help=VPROMPT_HELP)(vprompt)


FEATURE_BATCH_HELP = "Images per forward pass (default: 32 on the CPU, 256 on a GPU, where small batches leave it idle)."


def _model_options(model: str, pretrained: Optional[str], device: str, precision: str, batch_size: Optional[int],
                   workers: Optional[int], no_cache: bool, max_bad: str) -> dict:
    from tlcli.data.bad_files import parse_max_bad

    if device not in ("auto", "cpu", "cuda", "mps"):
        raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or mps")
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise UsageError(f"--precision {precision!r}: expected auto, fp32, bf16 or fp16")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: expected a positive number")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers {workers}: expected 0 or more")
    return {"model": model, "pretrained": pretrained, "device": device, "precision": precision,
            "batch_size": batch_size, "workers": workers, "use_cache": not no_cache, "max_bad": parse_max_bad(max_bad)}


def _labels(labels: Optional[str], labels_file: Optional[Path]) -> list[str] | None:
    if labels is not None and labels_file is not None:
        raise UsageError("pass --labels or --labels-file, not both")
    if labels_file is not None:
        try:
            names = [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines()]
        except OSError as error:
            raise UsageError(f"--labels-file {labels_file}: {error.strerror or error}") from None
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


def _shots(value: Optional[str]) -> list[int] | None:
    if value is None:
        return None
    try:
        shots = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        shots = []
    if not shots or any(k < 1 for k in shots):
        raise UsageError(f"--shots {value!r}: expected positive numbers, e.g. 16 or 1,4,16")
    return shots


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
    model: str = typer.Option("ViT-B-32", "--model", "-m", help=MODEL_HELP),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help=PRETRAINED_HELP),
    templates: str = typer.Option("ensemble", "--templates", help="ensemble | single | FILE (one {} template per line)."),
    prompt: Optional[Path] = typer.Option(None, "--prompt", help="Use the prompts learned by a `tlcli coop` run."),
    vprompt: Optional[Path] = typer.Option(None, "--vprompt", help="Add the visual prompt learned by a `tlcli vprompt` run."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Labels listed per image (default: all, up to 5)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Below this probability the label is 'unknown'."),
    evaluate: bool = typer.Option(False, "--eval", help="PATHS is a folder of label subfolders: report accuracy."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help=FEATURE_BATCH_HELP),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where native) | fp32 | bf16 | fp16"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding threads."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the feature cache."),
    max_bad: str = typer.Option("5%", "--max-bad", help="Fail (exit 2) if more unreadable files than this."),
    json_output: bool = typer.Option(False, "--json", help="One JSON line per image (and a summary with --eval)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    options = _model_options(model, pretrained, device, precision, batch_size, workers, no_cache, max_bad)
    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k {top_k}: expected 1 or more")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold}: expected a probability between 0 and 1")
    names = _labels(labels, labels_file)
    if names is None and not evaluate and prompt is None and vprompt is None:
        raise UsageError("no labels: pass --labels cat,dog or --labels-file FILE (or --eval on class folders)")
    if prompt is not None and templates != "ensemble":
        raise UsageError("--prompt uses the learned prompts; drop --templates")
    if vprompt is not None:
        if prompt is not None:
            raise UsageError("--vprompt and --prompt: pass one of them")
        from tlcli_clip.vprompt import run_vprompt_zeroshot

        run_vprompt_zeroshot(paths, names, vprompt, top_k, threshold, evaluate, options, json_output, quiet)
        return
    from tlcli_clip.zeroshot import run_zeroshot

    run_zeroshot(paths, names, templates, prompt, top_k, threshold, evaluate, options, json_output, quiet)


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
    data: Path = typer.Argument(..., help="Class folders or a CSV manifest (path,label)."),
    model: str = typer.Option("ViT-B-32", "--model", "-m", help=MODEL_HELP),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help=PRETRAINED_HELP),
    shots: Optional[int] = typer.Option(None, "--shots", "-k", help="Train on K images per class (seeded)."),
    val_split: float = typer.Option(0.2, "--val-split", help="Fraction held out to pick the weight decay and report accuracy."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Fixed weight decay (default: a sweep on the validation split)."),
    init: str = typer.Option("none", "--init", help="none | zeroshot (start from, and stay near, the label text embeddings)."),
    templates: str = typer.Option("ensemble", "--templates", help="Templates for --init zeroshot."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help=FEATURE_BATCH_HELP),
    device: str = typer.Option("auto", "--device"),
    precision: str = typer.Option("auto", "--precision", help="Precision of the image model (auto | fp32 | bf16 | fp16)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding threads."),
    no_cache: bool = typer.Option(False, "--no-cache"),
    max_bad: str = typer.Option("5%", "--max-bad"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/probe-<time>)."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    options = _model_options(model, pretrained, device, precision, batch_size, workers, no_cache, max_bad)
    if shots is not None and shots < 1:
        raise UsageError(f"--shots {shots}: expected 1 or more images per class")
    if not 0.0 < val_split < 1.0:
        raise UsageError(f"--val-split {val_split}: expected a fraction between 0 and 1, e.g. 0.2")
    if init not in ("none", "zeroshot"):
        raise UsageError(f"--init {init!r}: expected none or zeroshot")
    if weight_decay is not None and weight_decay < 0:
        raise UsageError(f"--weight-decay {weight_decay}: expected 0 or more")
    from tlcli.paths import new_run_dir
    from tlcli_clip.probe import run_probe

    config = {"data": str(data), **options, "shots": shots, "val_split": val_split, "weight_decay": weight_decay,
              "init": init, "templates": templates, "seed": seed}
    run_probe(config, new_run_dir("probe", out), json_output, quiet)


# --- coop ------------------------------------------------------------------------------------------------

COOP_HELP = """Learn soft prompts (CoOp): context vectors before the class names, the whole CLIP model frozen.

Trained by the shared engine (events, `tlcli monitor`, checkpoints, --resume) on cached image features. Saves
only the prompt vectors (KBs) and the labels: use them with `tlcli zeroshot --prompt RUN_DIR`,
`tlcli predict RUN_DIR` or `tlcli evaluate RUN_DIR DATA`.

Examples:

  tlcli coop photos/ --n-ctx 16 --shots 16 --epochs 50

  tlcli coop photos/ --init "a photo of a" --class-specific
"""


def coop(
    data: Optional[Path] = typer.Argument(None, help="Class folders or a CSV manifest (path,label)."),
    model: str = typer.Option("ViT-B-32", "--model", "-m", help=MODEL_HELP),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help=PRETRAINED_HELP),
    n_ctx: int = typer.Option(16, "--n-ctx", help="Number of learned context vectors."),
    init_phrase: Optional[str] = typer.Option(None, "--init", help='Initialise the context from a phrase, e.g. "a photo of a".'),
    class_specific: bool = typer.Option(False, "--class-specific", help="One context per class (CSC)."),
    shots: Optional[int] = typer.Option(None, "--shots", "-k", help="Train on K images per class (seeded)."),
    val_split: float = typer.Option(0.2, "--val-split"),
    epochs: int = typer.Option(50, "--epochs"),
    lr: float = typer.Option(2e-3, "--lr"),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device"),
    precision: str = typer.Option("auto", "--precision"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding threads."),
    no_cache: bool = typer.Option(False, "--no-cache"),
    max_bad: str = typer.Option("5%", "--max-bad"),
    early_stop: Optional[int] = typer.Option(None, "--early-stop", help="Stop after this many epochs without improvement."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/coop-<time>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run."),
    json_output: bool = typer.Option(False, "--json"),
    tui: bool = typer.Option(False, "--tui", help="Show the live dashboard while training."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    import json

    from tlcli.paths import new_run_dir
    from tlcli_clip.coop import CoopConfig, run_coop

    def train(cfg, run_dir, resume_run: bool):
        job = lambda: run_coop(cfg, run_dir, resume=resume_run, json_output=json_output,  # noqa: E731
                               quiet=quiet or tui)
        if not tui:
            return job()
        from tlcli.tui.launch import run_with_dashboard

        return run_with_dashboard(run_dir, job)

    if resume is not None:
        saved = resume / "config.json"
        if not saved.is_file():
            raise UsageError(f"--resume {resume}: no config.json there; pass the folder of a tlcli coop run")
        train(CoopConfig(**json.loads(saved.read_text(encoding="utf-8"))), resume, True)
        return
    if data is None:
        raise UsageError("missing DATA: pass a folder of class subfolders or a CSV manifest (or --resume RUN_DIR)")
    options = _model_options(model, pretrained, device, precision, batch_size, workers, no_cache, max_bad)
    if n_ctx < 1 and not init_phrase:
        raise UsageError(f"--n-ctx {n_ctx}: expected 1 or more")
    if shots is not None and shots < 1:
        raise UsageError(f"--shots {shots}: expected 1 or more images per class")
    if not 0.0 < val_split < 1.0:
        raise UsageError(f"--val-split {val_split}: expected a fraction between 0 and 1")
    cfg = validated(CoopConfig, data=str(data), model=options["model"], pretrained=options["pretrained"],
                       n_ctx=n_ctx, init=init_phrase, class_specific=class_specific, shots=shots,
                       val_split=val_split, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                       device=device, precision=precision, feature_precision=precision, decode_workers=workers,
                       use_cache=options["use_cache"], max_bad=options["max_bad"], early_stop=early_stop)
    train(cfg, new_run_dir("coop", out), False)


# --- compare ---------------------------------------------------------------------------------------------

COMPARE_HELP = """Zero-shot vs linear probe vs CoOp on the same seeded split: accuracy, trainable parameters, time.

Examples:

  tlcli compare photos/ --shots 1,4,16

  tlcli compare photos/ --shots 4 --coop-epochs 20 --json
"""


def compare(
    data: Path = typer.Argument(..., help="Class folders or a CSV manifest (path,label)."),
    model: str = typer.Option("ViT-B-32", "--model", "-m", help=MODEL_HELP),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help=PRETRAINED_HELP),
    shots: str = typer.Option("1,4,16", "--shots", help="Comma-separated images per class for the trained methods."),
    val_split: float = typer.Option(0.3, "--val-split", help="Held-out fraction every method is scored on."),
    templates: str = typer.Option("ensemble", "--templates"),
    n_ctx: int = typer.Option(4, "--n-ctx", help="CoOp context vectors."),
    coop_epochs: int = typer.Option(30, "--coop-epochs"),
    no_coop: bool = typer.Option(False, "--no-coop", help="Skip CoOp (the slowest method)."),
    with_vprompt: bool = typer.Option(False, "--vprompt", help="Also learn a visual prompt (runs the image tower every step)."),
    vprompt_epochs: int = typer.Option(10, "--vprompt-epochs", min=1),
    vprompt_pad: int = typer.Option(30, "--vprompt-pad", min=1, help="Width of the visual prompt, in pixels."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    device: str = typer.Option("auto", "--device"),
    precision: str = typer.Option("auto", "--precision"),
    workers: Optional[int] = typer.Option(None, "--workers"),
    no_cache: bool = typer.Option(False, "--no-cache"),
    max_bad: str = typer.Option("5%", "--max-bad"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/compare-<time>)."),
    json_output: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    options = _model_options(model, pretrained, device, precision, batch_size, workers, no_cache, max_bad)
    shot_list = _shots(shots)
    if not 0.0 < val_split < 1.0:
        raise UsageError(f"--val-split {val_split}: expected a fraction between 0 and 1")
    from tlcli.paths import new_run_dir
    from tlcli_clip.compare import run_compare

    config = {"data": str(data), **options, "shots": shot_list, "val_split": val_split, "templates": templates,
              "n_ctx": n_ctx, "coop_epochs": coop_epochs, "coop": not no_coop, "seed": seed,
              "vprompt": with_vprompt, "vprompt_epochs": vprompt_epochs, "vprompt_pad": vprompt_pad}
    run_compare(config, new_run_dir("compare", out), json_output, quiet)
