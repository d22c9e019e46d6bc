"""`tlcli text ...` and `tlcli prompt-tune ...`: parse and validate options, then call the run modules.

Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from tlcli.cli.options import given_options, validated
from tlcli.errors import UsageError

DEFAULT_MODEL = "all-MiniLM-L6-v2"

TEXT_HELP = """Text transfer on a frozen sentence encoder (all-MiniLM-L6-v2 by default, offline).

Examples:

  tlcli text zeroshot "The striker scored twice" --labels sports,cooking,weather

  cat lines.txt | tlcli text zeroshot - --labels sports,cooking --json

  tlcli text probe data.csv --val-split 0.3 --out runs/probe

  tlcli text predict runs/probe "Preheat the oven to 200 degrees" --json
"""

PROMPT_TUNE_HELP = """Soft-prompt tuning (Lester et al. 2021): learn N virtual-token embeddings in front of a frozen model.

--mode classify (default): a frozen sentence encoder + soft prompt + linear head; DATA is CSV text,label.
--mode generate: a frozen causal LM (--model DIR); DATA is CSV/JSONL input,target; loss on target tokens only.

Examples:

  tlcli prompt-tune data.csv --virtual-tokens 20 --init-text "Classify the topic:" --epochs 20

  tlcli prompt-tune pairs.jsonl --mode generate --model ./my-gpt2 --epochs 5

  tlcli prompt-tune --resume runs/prompt-tune-20261123-101500

  tlcli prompt-tune predict runs/prompt-tune-20261123-101500 "Whisk the eggs" --json
"""


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
    text_app.command("predict", help="Classify texts with a `tlcli text probe` run.")(predict)
    text_app.command("evaluate", help="Accuracy of a `tlcli text probe` run on labelled data (CSV text,label).")(evaluate)
    app.add_typer(text_app, name="text")

    tune_app = typer.Typer(cls=_TrainByDefault, help=PROMPT_TUNE_HELP, no_args_is_help=True)
    tune_app.command("train", help="Train a soft prompt (the default: `tlcli prompt-tune DATA` is the same).")(prompt_tune)
    tune_app.command("predict", help="Run a soft-prompt run on texts: class labels or generated text.")(prompt_tune_predict)
    app.add_typer(tune_app, name="prompt-tune")


# --- tlcli text -----------------------------------------------------------------------------------

def zeroshot(
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to classify; '-' reads one per line from stdin."),
    labels: str = typer.Option(..., "--labels", "-l", help="Comma-separated class names."),
    label_template: str = typer.Option("This text is about {}.", "--label-template",
                                       help="How a label becomes a sentence ({} is the label)."),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="A CSV (text column), JSONL or text file."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="sentence-transformers name or folder."),
    top: int = typer.Option(3, "--top", help="How many best labels to list per text."),
    batch_size: int = typer.Option(64, "--batch-size", "-b"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | mps"),
    json_output: bool = typer.Option(False, "--json", help="JSON Lines: {text, label, score, top} per input."),
) -> None:
    from tlcli_text.inputs import read_texts
    from tlcli_text.text_run import run_zeroshot

    names = [name.strip() for name in labels.split(",") if name.strip()]
    if len(names) < 2:
        raise UsageError(f"--labels {labels!r}: give at least two comma-separated labels, e.g. --labels sports,music")
    if len(set(names)) != len(names):
        raise UsageError(f"--labels {labels!r}: a label is repeated")
    if "{}" not in label_template:
        raise UsageError(f"--label-template {label_template!r}: must contain {{}} where the label goes")
    if top < 1:
        raise UsageError(f"--top {top}: expected 1 or more")
    run_zeroshot(read_texts(texts or [], input_file), names, label_template, model, top, batch_size, device,
                 json_output)


def probe(
    data: Path = typer.Argument(..., help="CSV text,label (header optional) or JSONL {text,label}."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (same format); default: --val-split."),
    val_split: float = typer.Option(0.5, "--val-split", help="Fraction held out (stratified, seeded) to choose the weight decay."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="sentence-transformers name or folder."),
    weight_decay: Optional[List[float]] = typer.Option(None, "--weight-decay",
                                                       help="Candidates (repeatable); default a sweep 1e-6..1e-1."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Embedding batch size."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | mps"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/text-probe-<time>)."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    from tlcli_text.text_run import run_probe

    if not 0.0 <= val_split < 1.0:
        raise UsageError(f"--val-split {val_split}: expected a fraction in [0, 1), e.g. 0.5")
    if val is None and val_split == 0.0:
        raise UsageError("--val-split 0 without --val: the weight decay is chosen on validation data; give one")
    decays = list(weight_decay) if weight_decay else None
    if decays and any(d < 0 for d in decays):
        raise UsageError(f"--weight-decay {decays}: must be >= 0")
    run_probe(data, val, val_split, model, decays, seed, batch_size, device, out, json_output, quiet)


def predict(
    run_dir: Path = typer.Argument(..., help="A `tlcli text probe` run folder (or its model/ folder)."),
    texts: Optional[List[str]] = typer.Argument(None, help="Texts; '-' reads one per line from stdin."),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="A CSV (text column), JSONL or text file."),
    top: int = typer.Option(3, "--top", help="How many best labels to list per text."),
    device: str = typer.Option("cpu", "--device"),
    json_output: bool = typer.Option(False, "--json", help="JSON Lines: {text, label, score, top} per input."),
) -> None:
    from tlcli_text.inputs import read_texts
    from tlcli_text.text_run import run_predict

    run_predict(run_dir, read_texts(texts or [], input_file), top, device, json_output)


def evaluate(
    run_dir: Path = typer.Argument(..., help="A `tlcli text probe` run folder (or its model/ folder)."),
    data: Path = typer.Argument(..., help="CSV text,label or JSONL {text,label}."),
    device: str = typer.Option("cpu", "--device"),
    json_output: bool = typer.Option(False, "--json", help="Print {accuracy, n, per_class} as JSON."),
) -> None:
    from tlcli_text.text_run import run_evaluate

    run_evaluate(run_dir, data, device, json_output)


# --- tlcli prompt-tune ----------------------------------------------------------------------------

def prompt_tune(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="classify: CSV text,label; generate: CSV/JSONL input,target."),
    mode: str = typer.Option("classify", "--mode", help="classify | generate"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m",
                              help="classify: sentence-transformers name/folder; generate: a causal LM folder."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation data (same format); default: --val-split."),
    val_split: float = typer.Option(0.2, "--val-split", help="Fraction held out for validation (seeded)."),
    virtual_tokens: int = typer.Option(20, "--virtual-tokens", "-n", help="Number of soft-prompt tokens."),
    init_text: Optional[str] = typer.Option(None, "--init-text",
                                            help="Initialise the prompt from this phrase's token embeddings (else random)."),
    lr: float = typer.Option(3e-2, "--lr", help="Learning rate of the soft prompt."),
    head_lr: float = typer.Option(1e-2, "--head-lr", help="Learning rate of the classification head."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="Weight decay of the head."),
    max_length: int = typer.Option(128, "--max-length", help="Truncate inputs (and input+target) to this many tokens."),
    epochs: int = typer.Option(10, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(16, "--batch-size", "-b"),
    accumulate: int = typer.Option(1, "--accumulate", help="Micro-batches per optimizer step."),
    scheduler: str = typer.Option("cosine", "--scheduler", help="cosine | onecycle | constant"),
    warmup: float = typer.Option(0.0, "--warmup", help="Warm-up steps (or a fraction of all steps if < 1)."),
    clip_grad: Optional[float] = typer.Option(1.0, "--clip-grad", help="Clip the gradient norm to this."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    precision: str = typer.Option("fp32", "--precision", help="auto | fp32 | bf16 | fp16"),
    early_stop: Optional[int] = typer.Option(None, "--early-stop", help="Stop after this many epochs without improvement."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Also checkpoint every N steps."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/prompt-tune-<time>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run from its newest checkpoint."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    tui: bool = typer.Option(False, "--tui", help="Show the live dashboard while training."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    options = {
        "data": str(data) if data else None, "mode": mode, "model": model, "val": str(val) if val else None,
        "val_split": val_split, "virtual_tokens": virtual_tokens, "init_text": init_text, "lr": lr,
        "head_lr": head_lr, "weight_decay": weight_decay, "max_length": max_length, "epochs": epochs,
        "max_steps": max_steps, "batch_size": batch_size, "accumulate": accumulate, "scheduler": scheduler,
        "warmup": warmup, "clip_grad": clip_grad, "seed": seed, "device": device, "precision": precision,
        "early_stop": early_stop, "save_every": save_every,
    }
    if resume is not None:
        run_dir, cfg = _resume_config(resume, given_options(ctx))
    else:
        cfg = _build_config(options)
        from tlcli.paths import new_run_dir

        run_dir = new_run_dir("prompt-tune", out)
    from tlcli_text.prompt_tune_run import run_prompt_tune

    def job():
        return run_prompt_tune(cfg, run_dir, resume=resume is not None, json_output=json_output, quiet=quiet or tui)

    if tui:
        from tlcli.tui.launch import run_with_dashboard

        run_with_dashboard(run_dir, job)
    else:
        job()


def prompt_tune_predict(
    run_dir: Path = typer.Argument(..., help="A `tlcli prompt-tune` run folder (or its model/ folder)."),
    texts: Optional[List[str]] = typer.Argument(None, help="Inputs; '-' reads one per line from stdin."),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="A CSV (text/input column), JSONL or text file."),
    top: int = typer.Option(3, "--top", help="classify: how many best labels to list per text."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="generate: tokens to generate (greedy)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    device: str = typer.Option("cpu", "--device"),
    json_output: bool = typer.Option(False, "--json", help="JSON Lines, one per input."),
) -> None:
    from tlcli_text.inputs import read_texts
    from tlcli_text.prompt_tune_run import run_prompt_tune_predict

    if max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens {max_new_tokens}: expected 1 or more")
    run_prompt_tune_predict(run_dir, read_texts(texts or [], input_file), top, max_new_tokens, batch_size, device,
                            json_output)


def _build_config(options: dict):
    from tlcli_text.prompt_tune_config import PromptTuneConfig

    if not options.get("data"):
        raise UsageError("missing DATA: pass a CSV text,label (or input,target with --mode generate), "
                         "or --resume RUN_DIR")
    return validated(PromptTuneConfig, **{k: v for k, v in options.items() if v is not None or k == "clip_grad"})


def _resume_config(run_dir: Path, given: set[str]):
    from tlcli_text.prompt_tune_config import PromptTuneConfig

    saved = run_dir / "config.json"
    if not saved.is_file():
        raise UsageError(f"--resume {run_dir}: no config.json there; pass the folder of a tlcli prompt-tune run")
    changed = given - {"resume", "json_output", "tui", "quiet"}
    if changed:
        flags = ", ".join("--" + n.replace("_", "-") for n in sorted(changed))
        raise UsageError(f"--resume continues the run exactly as configured; drop {flags}")
    return run_dir, PromptTuneConfig(**json.loads(saved.read_text(encoding="utf-8")))
