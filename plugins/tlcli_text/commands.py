"""`tlcli text ...` and `tlcli prompt-tune ...`: parse and validate options, then call the run modules.

Shared flags come from the option kit (``tlcli.cli.options``): same name, short form and default as every
other command. Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from tlcli.cli import options
from tlcli.errors import UsageError

DEFAULT_MODEL = "all-MiniLM-L6-v2"

TEXT_HELP = """Text transfer on a frozen sentence encoder (all-MiniLM-L6-v2 by default, offline).

Examples:

  tlcli text zeroshot "The striker scored twice" --labels sports,cooking,weather

  cat lines.txt | tlcli text zeroshot - --labels sports,cooking --json

  tlcli text probe data.csv --out runs/probe

  tlcli predict runs/probe "Preheat the oven to 200 degrees" --json

  tlcli evaluate runs/probe test.csv
"""

PROMPT_TUNE_HELP = """Soft-prompt tuning (Lester et al. 2021): learn N virtual-token embeddings in front of a frozen model.

--mode classify (default): a frozen sentence encoder + soft prompt + linear head; DATA is CSV text,label.
--mode generate: a frozen causal LM (--model DIR); DATA is CSV/JSONL input,target; loss on target tokens only.

Examples:

  tlcli prompt-tune data.csv --virtual-tokens 20 --init-text "Classify the topic:" --epochs 20

  tlcli prompt-tune pairs.jsonl --mode generate --model ./my-gpt2 --epochs 5

  tlcli prompt-tune --resume runs/prompt-tune-20261123-101500

  tlcli evaluate runs/prompt-tune-20261123-101500 test.csv

  tlcli prompt-tune predict runs/prompt-tune-20261123-101500 "Whisk the eggs" --json
"""

INPUT_HELP = "A CSV/TSV (text column), JSONL or plain-text file (one text per line)."
TEXTS_HELP = "Texts; '-' reads one per line from stdin."


class _TrainByDefault(TyperGroup):
    """`tlcli prompt-tune DATA ...` trains; `tlcli prompt-tune predict ...` names a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["train", *args]
        return super().parse_args(ctx, args)


def register(app: typer.Typer) -> None:
    text_app = typer.Typer(help=TEXT_HELP, no_args_is_help=True)
    text_app.command("zeroshot", help="Classify texts by similarity to label descriptions.")(zeroshot)
    text_app.command("probe", help="Logistic regression on frozen sentence embeddings of DATA (CSV text,label).")(probe)
    text_app.command("predict", help="Classify texts with a text run (the same as `tlcli predict RUN TEXTS`).")(predict)
    text_app.command("evaluate", help="Score a text run on labelled data (the same as `tlcli evaluate RUN DATA`).")(evaluate)
    app.add_typer(text_app, name="text")

    tune_app = typer.Typer(cls=_TrainByDefault, help=PROMPT_TUNE_HELP, no_args_is_help=True)
    tune_app.command("train", help="Train a soft prompt (the default: `tlcli prompt-tune DATA` is the same).")(prompt_tune)
    tune_app.command("predict", help="Run a soft-prompt run on texts: class labels or generated text.")(prompt_tune_predict)
    app.add_typer(tune_app, name="prompt-tune")


# --- tlcli text -----------------------------------------------------------------------------------

def zeroshot(
    texts: Optional[List[str]] = typer.Argument(None, help=TEXTS_HELP),
    labels: str = typer.Option(..., "--labels", "-l", help="Comma-separated class names."),
    label_template: str = typer.Option("This text is about {}.", "--label-template",
                                       help="How a label becomes a sentence: {} (once) is the label."),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help=INPUT_HELP),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="sentence-transformers name or folder."),
    top_k: int = options.top_k(),
    batch_size: int = options.batch_size(64, help="Texts per encoder batch."),
    device: str = options.device(),
    json_output: bool = options.json_(),
) -> None:
    from tlcli.data.texts import read_texts
    from tlcli_text.text_run import run_zeroshot

    names = [name.strip() for name in labels.split(",") if name.strip()]
    if len(names) < 2:
        raise UsageError(f"--labels {labels!r}: give at least two comma-separated labels, e.g. --labels sports,music")
    if len(set(names)) != len(names):
        raise UsageError(f"--labels {labels!r}: a label is repeated")
    if label_template.count("{}") != 1:
        raise UsageError(f"--label-template {label_template!r}: must contain {{}} exactly once, where the label "
                         "goes, e.g. 'This text is about {}.'")
    run_zeroshot(read_texts(texts or [], input_file), names, label_template, model, top_k, batch_size, device,
                 json_output)


def _check_decays(values):
    import math

    for value in values or []:
        if not math.isfinite(value) or value < 0:
            raise typer.BadParameter(f"{value} must be a finite number >= 0", param_hint="--weight-decay")
    return values


def probe(
    data: Path = typer.Argument(..., help="CSV text,label (header optional) or JSONL {text,label}."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (same format); default: --val-split."),
    val_split: float = options.val_split(),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="sentence-transformers name or folder."),
    weight_decay: Optional[List[float]] = typer.Option(None, "--weight-decay", callback=_check_decays,
                                                       help="Candidates (repeatable); default a sweep 1e-6..1."),
    seed: int = options.seed(),
    batch_size: int = options.batch_size(64, help="Texts per encoder batch."),
    device: str = options.device(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    json_output: bool = options.json_(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli_text.text_run import run_probe

    if val is None and val_split == 0.0:
        raise UsageError("--val-split 0 without --val: the weight decay is chosen on validation data; give one")
    options.check_out_path(out)
    settings = {"data": str(data), "val": str(val) if val else None, "val_split": val_split, "model": model,
                "weight_decays": list(weight_decay) if weight_decay else None, "seed": seed,
                "batch_size": batch_size, "device": device}
    run_probe(settings, out, overwrite, json_output, quiet)


def predict(
    run_dir: Path = typer.Argument(..., help="A text run folder (text probe or prompt-tune), or its model/ folder."),
    texts: Optional[List[str]] = typer.Argument(None, help=TEXTS_HELP),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help=INPUT_HELP),
    top_k: int = options.top_k(),
    device: str = options.device(),
    json_output: bool = options.json_(),
) -> None:
    from tlcli.cli.predict_texts import predict_texts

    predict_texts(_text_predictor(run_dir, device), texts or [], top_k, json_output, input_file)


def evaluate(
    run_dir: Path = typer.Argument(..., help="A text run folder (text probe or prompt-tune), or its model/ folder."),
    data: Path = typer.Argument(..., help="CSV text,label or JSONL {text,label}."),
    confusion: Optional[Path] = typer.Option(None, "--confusion", help="Also draw the confusion matrix (.svg/.png)."),
    device: str = options.device(),
    json_output: bool = options.json_(),
) -> None:
    from tlcli.cli.predict_texts import evaluate_texts

    evaluate_texts(_text_predictor(run_dir, device), data, json_output, confusion)


def _text_predictor(run_dir: Path, device: str):
    from tlcli.cli.predict import load_run_predictor
    from tlcli.output import display_path

    predictor = load_run_predictor(Path(run_dir), device)
    if getattr(predictor, "modality", "image") != "text":
        raise UsageError(f"{display_path(run_dir)}: an image model; use tlcli predict / tlcli evaluate")
    return predictor


# --- tlcli prompt-tune ----------------------------------------------------------------------------

def prompt_tune(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="classify: CSV text,label; generate: CSV/JSONL input,target."),
    mode: str = typer.Option("classify", "--mode", help="classify | generate"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m",
                              help="classify: sentence-transformers name/folder; generate: a causal LM folder."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (same format); default: --val-split."),
    val_split: float = options.val_split(),
    virtual_tokens: int = typer.Option(20, "--virtual-tokens", "-n", help="Number of soft-prompt tokens."),
    init_text: Optional[str] = typer.Option(None, "--init-text",
                                            help="Initialise the prompt from this phrase's token embeddings (else random)."),
    lr: float = options.finite_option(3e-2, "--lr", low=0.0, low_open=True, help="Learning rate of the soft prompt."),
    head_lr: float = options.finite_option(1e-2, "--head-lr", low=0.0, low_open=True,
                                           help="Learning rate of the classification head."),
    weight_decay: float = options.finite_option(0.0, "--weight-decay", low=0.0, help="Weight decay of the head."),
    max_length: int = typer.Option(128, "--max-length", help="Truncate inputs (and input+target) to this many tokens."),
    epochs: int = typer.Option(10, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    batch_size: int = options.batch_size(16, help="Texts per training batch."),
    accumulate: int = typer.Option(1, "--accumulate", help="Micro-batches per optimizer step."),
    scheduler: str = typer.Option("cosine", "--scheduler", help="cosine | onecycle | constant"),
    warmup: float = options.finite_option(0.0, "--warmup", low=0.0,
                                          help="Warm-up steps (or a fraction of all steps if < 1)."),
    clip_grad: Optional[float] = options.finite_option(1.0, "--clip-grad", low=0.0, low_open=True,
                                                       help="Clip the gradient norm to this."),
    seed: int = options.seed(),
    device: str = options.device(),
    precision: str = options.precision(),
    early_stop: Optional[int] = options.early_stop(),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Also checkpoint every N steps."),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    resume: Optional[Path] = options.resume(),
    json_output: bool = options.json_(),
    tui: bool = options.tui(),
    quiet: bool = options.quiet(),
) -> None:
    import sys

    settings = {
        "data": str(data) if data else None, "mode": mode, "model": model, "val": str(val) if val else None,
        "val_split": val_split, "virtual_tokens": virtual_tokens, "init_text": init_text, "lr": lr,
        "head_lr": head_lr, "weight_decay": weight_decay, "max_length": max_length, "epochs": epochs,
        "max_steps": max_steps, "batch_size": batch_size, "accumulate": accumulate, "scheduler": scheduler,
        "warmup": warmup, "clip_grad": clip_grad, "seed": seed, "device": device, "precision": precision,
        "early_stop": early_stop, "save_every": save_every,
    }
    from tlcli.run import Run

    if resume is not None:
        options.refuse_changes_on_resume(ctx)
        run = Run.resume(resume, "prompt-tune", "text")
        cfg = _saved_config(run)
    else:
        cfg = _build_config(settings)
        options.check_out_path(out)
        run = None
    from tlcli_text.prompt_tune_run import run_prompt_tune

    dashboard = tui and sys.stdin.isatty() and sys.stdout.isatty()

    def job():
        return run_prompt_tune(cfg, run, out, overwrite, json_output=json_output, quiet=quiet or dashboard)

    if tui:
        from tlcli.run import default_run_dir
        from tlcli.tui.launch import run_with_dashboard

        if run is None and out is None:
            out = default_run_dir("prompt-tune")  # the dashboard follows the folder the job will create
        run_with_dashboard(run.path if run else out, job)
    else:
        job()


def prompt_tune_predict(
    run_dir: Path = typer.Argument(..., help="A `tlcli prompt-tune` run folder (or its model/ folder)."),
    texts: Optional[List[str]] = typer.Argument(None, help=TEXTS_HELP),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help=INPUT_HELP),
    top_k: int = options.top_k(),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1, help="generate: tokens to generate (greedy)."),
    device: str = options.device(),
    json_output: bool = options.json_(),
) -> None:
    from tlcli.data.texts import read_texts
    from tlcli_text.prompt_tune_run import run_prompt_tune_predict

    run_prompt_tune_predict(run_dir, read_texts(texts or [], input_file), top_k, max_new_tokens, device, json_output)


def _build_config(settings: dict):
    from tlcli_text.prompt_tune_config import PromptTuneConfig

    if not settings.get("data"):
        raise UsageError("missing DATA: pass a CSV text,label (or input,target with --mode generate), "
                         "or --resume RUN_DIR")
    return options.validated(PromptTuneConfig, **{k: v for k, v in settings.items()
                                                  if v is not None or k == "clip_grad"})


def _saved_config(run):
    from tlcli_text.prompt_tune_config import PromptTuneConfig

    try:
        return PromptTuneConfig(**run.config)
    except Exception:  # a hand-edited or foreign config.json: say which run, not pydantic's traceback
        run.close()
        raise UsageError(f"--resume {run.path}: its config.json is not a prompt-tune configuration") from None
