"""The option groups every command composes: each flag declared once, as a pydantic field.

A command's config class is the declaration of its flags (``tlcli/cli/command.py`` generates the command
line from it): a field's name is its flag (``max_steps`` -> ``--max-steps``), its type and constraints are
the flag's type and range, its description is the help, and :func:`option` adds what a field alone cannot
say (a short form, a positional argument, a help panel, a flag that may change on ``--resume``).

Groups (compose them by inheritance; a method may redeclare a field to change its default, never its
meaning):

- :class:`Device`: ``--device --workers``; :class:`Placement`: those and ``--precision``
- :class:`TrainOptions`: the shared training loop's options (``--epochs --max-steps --lr ...``)
- :class:`ImageData`: labelled images (``DATA --val --val-split --image-size --augment --max-bad``) and
  :class:`ImageColumns` (``--image-column --label-column``, for table data: parquet, arrow, datasets)
- :class:`TextColumn`, :class:`TextColumns`: ``--text-column`` (and ``--label-column``) of the text readers
- :class:`LoRAOptions`: low-rank adapters (``--lora RANK --lora-alpha --lora-dropout --lora-targets``)
- :class:`LLMOptions`: a language model and its sampling (``--llm --temperature --max-tokens``)

Pure data: nothing here imports Click, Typer or torch, so the engine and the plugins' configs use it freely.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

# --- the one default of each shared option ------------------------------------------------------------------
DEVICE = "auto"
PRECISION = "auto"
VAL_SPLIT = 0.2
SEED = 0
TOP_K = 5
MAX_SEED = 2**32 - 1  # numpy's and torch's generators both take it; larger seeds overflowed in torch

PANEL_RUN = "Run folder and output"
PANEL_PLACEMENT = "Device"
PANEL_TRAIN = "Training"
PANEL_DATA = "Data"
PANEL_LLM = "Language model"
PANEL_ADAPTERS = "Adapters (LoRA)"


def option(default: Any = ..., help: str = "", *, short: str | None = None, flag: str | bool | None = None,
           argument: bool = False, panel: str | None = None, resume: bool = False, missing: str | None = None,
           metavar: str | None = None, repeat: bool = False, **constraints: Any) -> Any:
    """A config field that is also a flag.

    short: the short form (``"-m"``); flag: the long flag when it is not the field's name, or ``False`` for a
    field that is no flag (set by the method, never typed); argument: a positional argument instead of a
    flag; panel: the ``--help`` panel it is listed under; resume: may change on ``--resume`` (speed or display
    only, never the result); missing: the fix named when a required value is missing; repeat: a list flag
    given once per value (``--filter a --filter b``: each value kept whole, commas included); ``constraints``:
    pydantic's (``ge``, ``gt``, ``le``, ...), checked before any work.
    """
    extra = {key: value for key, value in (("short", short), ("flag", flag), ("argument", argument or None),
                                           ("panel", panel), ("resume", resume or None), ("missing", missing),
                                           ("metavar", metavar), ("repeat", repeat or None)) if value is not None}
    return Field(default, description=help, json_schema_extra=extra or None, **constraints)


def _comma_list(value: Any) -> Any:
    """``"cat, dog"`` (a flag) as ``["cat", "dog"]``; a list (a config file) as it is."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _max_bad_share(value: Any) -> float:
    from tlcli.data.bad_files import parse_max_bad

    return parse_max_bad(value)


def class_names(names: list[str] | None) -> list[str] | None:
    """Class names as a user gives them: stripped, at least two, none twice (ValueError names the fix)."""
    if names is None:
        return None
    names = [name.strip() for name in names if name.strip()]
    if len(names) < 2:
        raise ValueError("give at least two class names, e.g. --labels cat,dog")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate class names: {', '.join(duplicates)}")
    return names


def seed_list(seeds: list[int] | None) -> list[int] | None:
    """``--seeds 1,2,3``: distinct seeds in the generators' range (ValueError names the fix)."""
    if seeds is None:
        return None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError("expected distinct integers separated by commas, e.g. 1,2,3")
    if any(s < 0 or s > MAX_SEED for s in seeds):
        raise ValueError(f"each seed must be between 0 and {MAX_SEED}")
    return seeds


# Class names (``--labels cat,dog`` or a list in a config file), checked by :func:`class_names`.
ClassNames = Annotated[list[str] | None, AfterValidator(class_names)]
# A list given on the command line as one comma-separated value (``--labels cat,dog``).
CommaList = Annotated[list[str], BeforeValidator(_comma_list)]
# ``--seeds 1,2,3`` (or a list in a config file), checked by :func:`seed_list`.
SeedList = Annotated[list[int] | None, BeforeValidator(_comma_list), AfterValidator(seed_list)]
# ``--max-bad`` as a config field: "5%", "0.05" or 0.05 (a config file may say max_bad = "5%").
MaxBadShare = Annotated[float, BeforeValidator(_max_bad_share)]


class Options(BaseModel):
    """Base of every command's config: unknown keys are refused, and so is a non-finite number (``--lr inf``
    or a NaN in a config file is a usage error, not a run that trains to NaN)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Device(Options):
    device: Literal["auto", "cpu", "cuda", "mps"] = option(
        DEVICE, "auto | cpu | cuda | mps (auto: a GPU when there is one).", panel=PANEL_PLACEMENT)
    workers: int | None = option(None, "Data-loading processes (default: the CPUs less one, at most 4).",
                                 ge=0, panel=PANEL_PLACEMENT, resume=True)


class Placement(Device):
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        PRECISION, "auto | fp32 | bf16 | fp16 (auto: what measured fastest on this device).",
        panel=PANEL_PLACEMENT)


class Seeded(Options):
    seed: int = option(SEED, "Seed for splits, sampling and initialisation.", ge=0, le=MAX_SEED)


class TrainOptions(Placement, Seeded):
    """The shared training loop's options: every training command has them, and the engine honours each."""

    epochs: int = option(10, "Passes over the training data.", ge=1, panel=PANEL_TRAIN)
    max_steps: int | None = option(None, "Stop after this many optimizer steps.", ge=1, panel=PANEL_TRAIN)
    lr: float = option(1e-3, "Learning rate.", gt=0, panel=PANEL_TRAIN)
    weight_decay: float = option(0.05, "Weight decay (never on biases and norms).", ge=0, panel=PANEL_TRAIN)
    batch_size: int = option(32, "Items per micro-batch.", short="-b", ge=1, panel=PANEL_TRAIN)
    accumulate: int = option(1, "Micro-batches per optimizer step.", ge=1, panel=PANEL_TRAIN)
    optimizer: Literal["adamw", "sgd"] = option("adamw", "adamw | sgd", panel=PANEL_TRAIN)
    scheduler: Literal["cosine", "onecycle", "constant"] = option(
        "cosine", "Learning-rate schedule: cosine | onecycle | constant.", panel=PANEL_TRAIN)
    warmup: float = option(0.0, "Warm-up steps (or a fraction of all steps when below 1).", ge=0,
                           panel=PANEL_TRAIN)
    clip_grad: float | None = option(None, "Clip the gradient norm to this.", gt=0, panel=PANEL_TRAIN)
    early_stop: int | None = option(None, "Stop after this many evaluations without improvement.", ge=1,
                                    panel=PANEL_TRAIN)
    save_every: int | None = option(None, "Also checkpoint every N steps (what --resume continues from).",
                                    ge=1, panel=PANEL_TRAIN)
    log_every: int | None = option(None, "Write a metric event every N steps (default: about 500 a run).",
                                   ge=1, panel=PANEL_TRAIN, resume=True)
    report_to: CommaList = option([], "Also write the metrics as they are logged: tensorboard (RUN/tensorboard/), "
                                  "csv (RUN/metrics.csv), or a plugin's sink (wandb, mlflow); comma-separated.",
                                  panel=PANEL_TRAIN, resume=True)
    skip_nonfinite: bool = option(False, "Skip steps whose loss is inf/NaN instead of failing the run.",
                                  panel=PANEL_TRAIN)
    compile: bool = option(False, "torch.compile the model.", panel=PANEL_TRAIN)
    # Set by a method, not typed: the loop reads them.
    eval_batch_size: int = option(64, ge=1, flag=False)
    checkpoint_interval_s: float = option(60.0, "epoch-end checkpoints at most this often", ge=0, flag=False)
    unfreeze_every: int | None = option(None, ge=1, flag=False)
    train_bn: bool = option(False, flag=False)
    monitor: str = option("val_accuracy", flag=False)
    monitor_mode: Literal["max", "min"] = option("max", flag=False)

    def resolved_workers(self) -> int:
        import os

        if self.workers is not None:
            return self.workers
        return min(4, max(0, (os.cpu_count() or 1) - 1))


# What a table column flag says; the defaults (the columns looked for by name) are in tlcli/data/tables.py.
LABEL_COLUMN_HELP = ("The label column of DATA (default: label, else the one ClassLabel column; in a CSV: its "
                     "label header).")


class ImageColumns(Options):
    """The columns of labelled images given as a table (parquet, arrow, a saved or cached Hugging Face
    dataset; see docs/data.md), and of a CSV manifest with a header."""

    image_column: str | None = option(None, "The image column (bytes or paths) of a table (default: image, "
                                      "else img, else the one Image column; in a CSV: its path header).",
                                      panel=PANEL_DATA)
    label_column: str | None = option(None, LABEL_COLUMN_HELP, panel=PANEL_DATA)


class TextColumn(Options):
    """The text column of a CSV/TSV with a header, a JSONL file or a table."""

    text_column: str | None = option(None, "The text column (default: text, else sentence, input, prompt, "
                                     "question, document).", panel=PANEL_DATA)


class TextColumns(TextColumn):
    """The columns of labelled texts in a CSV/TSV with a header, a JSONL file or a table."""

    label_column: str | None = option(None, LABEL_COLUMN_HELP, panel=PANEL_DATA)


DATA_HELP = ("Class folders, a CSV manifest (path,label), a .parquet/.arrow file, a datasets.save_to_disk "
             "folder[:SPLIT] or hf:NAME[:SPLIT] (local cache only).")


class ImageData(ImageColumns):
    """Labelled images: class folders, a CSV manifest (path,label) or a table (see docs/data.md)."""

    data: str = option(..., DATA_HELP, argument=True,
                              metavar="DATA", missing="pass a folder of class subfolders, a CSV manifest or a "
                              "dataset (or --resume RUN_DIR)")
    val: str | None = option(None, "Validation data (same forms); default: a dataset's validation split, else "
                             "--val-split of DATA.", panel=PANEL_DATA)
    val_split: float = option(VAL_SPLIT, "Share of the labelled data held out for validation (stratified, "
                              "seeded).", ge=0.0, lt=1.0, panel=PANEL_DATA)
    image_size: int | None = option(None, "Crop size (default: the model's).", ge=8, panel=PANEL_DATA)
    max_bad: MaxBadShare = option(0.05, "Exit 2 when more input files than this are unreadable: a share "
                                  "(5%, 0.05) or a count.", panel=PANEL_DATA)


class LoRAOptions(Options):
    """Low-rank adapters (LoRA, Hu et al. 2021): the base weights stay frozen and out of the optimizer; each
    targeted layer learns ``W + (alpha / rank) * B @ A``. The engine applies them (``Task.adapters``)."""

    lora: int | None = option(None, "Train LoRA adapters of this rank instead of the model's weights.", ge=1,
                              metavar="RANK", panel=PANEL_ADAPTERS)
    lora_alpha: float | None = option(None, "LoRA scale numerator: updates are scaled by alpha / rank "
                                      "(default: 2 x rank).", gt=0, panel=PANEL_ADAPTERS)
    lora_dropout: float = option(0.0, "Dropout on the adapters' input.", ge=0.0, lt=1.0, panel=PANEL_ADAPTERS)
    lora_targets: CommaList | None = option(None, "Modules to adapt: names or globs as `tlcli layers MODEL` "
                                            "prints them, `default` for the default (attention and MLP linears; "
                                            "a CNN's spatial convolutions).",
                                            metavar="PATTERNS", panel=PANEL_ADAPTERS)


class LLMOptions(Options):
    llm: str | None = option(None, "hf:MODEL_DIR | openai:BASE_URL#MODEL | scripted:FILE.json (default: "
                             "$TLCLI_LLM, then the config file's \\[llm]).", panel=PANEL_LLM)
    temperature: float | None = option(None, "Sampling temperature (0: greedy).", ge=0.0, le=5.0,
                                       panel=PANEL_LLM)
    max_tokens: int | None = option(None, "The longest reply, in tokens.", ge=1, panel=PANEL_LLM)
