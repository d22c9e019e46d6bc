"""The options of `tlcli text ...` and `tlcli prompt-tune ...`: the one declaration of their flags (see
tlcli/fields.py). A run's config.json is its config here; ``--resume`` and ``--config`` read it back."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from tlcli.fields import (
    PANEL_DATA, PANEL_PLACEMENT, PANEL_TRAIN, TOP_K, VAL_SPLIT, CommaList, Device, LoRAOptions, Options, Placement,
    Seeded, SeedList, TextColumn, TextColumns, TrainOptions, option,
)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
TEXTS_HELP = "Texts; '-' reads one per line from stdin."
INPUT_HELP = ("A CSV/TSV (text column), JSONL, plain-text file (one text per line) or a table (.parquet, .arrow, "
              "a save_to_disk folder[:SPLIT], hf:NAME[:SPLIT]).")
RUN_HELP = "A text run folder (text probe or prompt-tune), or its model/ folder."
PROMPT = "Soft prompt"
ENCODER = "Encoder"
LADDER = "Ladder"
# --encoder-lr-factor's defaults (the head at --lr 1e-3): full fine-tuning moves the pretrained weights
# gently, at 5e-5 (BERT's usual fine-tuning range is 2e-5..5e-5); LoRA's adapters are new weights that start
# at zero and learn at the head's rate, 1e-3 (LoRA papers and PEFT's examples use 1e-4..1e-3). Chosen on
# examples/text_hard and examples/text_transfer (docs/text-finetune.md): these beat 2e-5 (full) and a
# 10x larger head rate on both, by about a point, on one seed.
FULL_ENCODER_LR_FACTOR = 0.05
LORA_ENCODER_LR_FACTOR = 1.0
LADDER_METHODS = ("zeroshot", "probe", "prompt", "lora", "full")


class TextDevice(Device):
    """Where the text encoder runs. Texts are tokenized in this process: no data-loading workers."""

    workers: int | None = option(None, flag=False)


class Texts(TextColumn):
    """The texts a command reads: arguments, ``-`` (stdin lines) and ``--input FILE``."""

    texts: list[str] = option([], TEXTS_HELP, argument=True, metavar="TEXTS")
    input: str | None = option(None, INPUT_HELP, short="-i")


class TextRun(Options):
    """A text run to load: the first argument, before any TEXTS (a base class comes first in the argument
    order when it is the last base: pydantic lists the fields of the later bases first)."""

    run_dir: str = option(..., RUN_HELP, argument=True, metavar="RUN_DIR", missing="pass a text run folder")


class TopK(Options):
    top_k: int = option(TOP_K, "How many labels to list per input.", short="-k", ge=1)


class ZeroshotConfig(Texts, TopK, TextDevice):
    labels: CommaList = option(..., "Comma-separated class names.", short="-l",
                               missing="pass the class names, e.g. --labels sports,music")
    label_template: str = option("This text is about {}.", "How a label becomes a sentence: {} (once) is the "
                                 "label.")
    model: str = option(DEFAULT_MODEL, "sentence-transformers name or folder.", short="-m")
    batch_size: int = option(64, "Texts per encoder batch.", short="-b", ge=1)

    @field_validator("labels")
    @classmethod
    def _two_distinct_labels(cls, names: list[str]) -> list[str]:
        if len(names) < 2:
            raise ValueError("give at least two comma-separated labels, e.g. --labels sports,music")
        if len(set(names)) != len(names):
            raise ValueError("a label is repeated; give each class once")
        return names

    @field_validator("label_template")
    @classmethod
    def _one_slot(cls, template: str) -> str:
        if template.count("{}") != 1:
            raise ValueError("must contain {} exactly once, where the label goes, e.g. 'This text is about {}.'")
        return template


NonNegative = Annotated[float, Field(ge=0.0)]


TEXT_DATA_HELP = ("CSV text,label (header optional), JSONL {text,label}, or a table: .parquet, .arrow, a "
                  "save_to_disk folder[:SPLIT], hf:NAME[:SPLIT] (local cache only).")
TEXT_VAL_HELP = "Validation data (same forms); default: a dataset's validation split, else --val-split of DATA."


class ProbeConfig(TextColumns, TextDevice, Seeded):
    data: str = option(..., TEXT_DATA_HELP, argument=True,
                       metavar="DATA", missing="pass a CSV of text,label rows")
    val: str | None = option(None, TEXT_VAL_HELP, panel=PANEL_DATA)
    val_split: float = option(VAL_SPLIT, "Share of the labelled data held out for validation (stratified, "
                              "seeded).", ge=0.0, lt=1.0, panel=PANEL_DATA)
    model: str = option(DEFAULT_MODEL, "sentence-transformers name or folder.", short="-m")
    weight_decay: list[NonNegative] | None = option(
        None, "Weight-decay candidates, comma-separated (default: a sweep 1e-6..1); the best on validation "
        "is kept.")
    batch_size: int = option(64, "Texts per encoder batch.", short="-b", ge=1)

    @model_validator(mode="after")
    def _has_validation(self):
        if self.val is None and self.val_split == 0.0:
            raise ValueError("--val-split 0 without --val: the weight decay is chosen on validation data; give one")
        return self


class TextPredictConfig(Texts, TopK, TextDevice, TextRun):
    """`text predict RUN_DIR TEXTS...`."""


class TextEvaluateConfig(TextColumns, TextDevice):
    run_dir: str = option(..., RUN_HELP, argument=True, metavar="RUN_DIR", missing="pass a text run folder")
    data: str = option(..., "CSV text,label, JSONL {text,label} or a table (a dataset dictionary: its test "
                       "split).", argument=True, metavar="DATA",
                       missing="pass a CSV of text,label rows")
    confusion: str | None = option(None, "Also draw the confusion matrix (.svg/.png).")


class PromptTuneConfig(TextColumns, TrainOptions):
    """Soft-prompt tuning: the shared training options (defaults for a soft prompt) and the method's own."""

    data: str = option(..., "classify: CSV text,label; generate: CSV/JSONL input,target; or a table (.parquet, "
                       ".arrow, a save_to_disk folder[:SPLIT], hf:NAME[:SPLIT]).", argument=True,
                       metavar="DATA", missing="pass a CSV text,label (or input,target with --mode generate), "
                       "or --resume RUN_DIR")
    mode: Literal["classify", "generate"] = option("classify", "classify | generate")
    model: str = option(DEFAULT_MODEL, "classify: sentence-transformers name/folder; generate: a causal LM "
                        "folder.", short="-m")
    val: str | None = option(None, TEXT_VAL_HELP, panel=PANEL_DATA)
    val_split: float = option(VAL_SPLIT, "Share of the labelled data held out for validation (stratified, "
                              "seeded).", ge=0.0, lt=1.0, panel=PANEL_DATA)
    virtual_tokens: int = option(20, "Number of soft-prompt tokens.", short="-n", ge=1, le=512, panel=PROMPT)
    init_text: str | None = option(None, "Initialise the prompt from this phrase's token embeddings (else "
                                   "random).", panel=PROMPT)
    head_lr: float = option(1e-2, "Learning rate of the classification head (classify).", gt=0, panel=PROMPT)
    max_length: int = option(128, "Truncate inputs (and input+target) to this many tokens.", ge=4, panel=PROMPT)
    # The shared options, with a soft prompt's defaults (same meaning): the prompt's learning rate, the
    # head's weight decay, small batches, clipped gradients.
    lr: float = option(3e-2, "Learning rate (of the soft prompt; --head-lr for the head).", gt=0, panel=PANEL_TRAIN)
    weight_decay: float = option(0.0, "Weight decay (of the head's weights; never on the prompt or biases).",
                                 ge=0, panel=PANEL_TRAIN)
    batch_size: int = option(16, "Texts per micro-batch.", short="-b", ge=1, panel=PANEL_TRAIN)
    clip_grad: float | None = option(1.0, "Clip the gradient norm to this.", gt=0, panel=PANEL_TRAIN)
    # Texts are tokenized up front; worker processes would only add start-up time.
    workers: int | None = option(0, "Data-loading processes (texts are tokenized up front: 0 is fastest).",
                                 ge=0, panel=PANEL_PLACEMENT, resume=True)

    @model_validator(mode="after")
    def _monitor_for_mode(self):
        # Generation has no accuracy; the best checkpoint is the one with the lowest validation loss.
        if self.mode == "generate" and self.monitor == "val_accuracy":
            self.monitor, self.monitor_mode = "val_loss", "min"
        return self


class SoftPromptRun(Options):
    run_dir: str = option(..., "A `tlcli prompt-tune` run folder (or its model/ folder).", argument=True,
                          metavar="RUN_DIR", missing="pass a prompt-tune run folder")


class PromptTunePredictConfig(Texts, TopK, TextDevice, SoftPromptRun):
    """`prompt-tune predict RUN_DIR TEXTS...`."""

    max_new_tokens: int = option(32, "generate: tokens to generate (greedy).", ge=1)


class LabelledTexts(Options):
    data: str = option(..., "CSV text,label (header optional) or JSONL {text,label}.", argument=True,
                       metavar="DATA", missing="pass a CSV of text,label rows (or --resume RUN_DIR)")
    val: str | None = option(None, "Validation data (same format); default: --val-split of DATA.", panel=PANEL_DATA)
    val_split: float = option(VAL_SPLIT, "Share of the labelled data held out for validation (stratified, "
                              "seeded).", ge=0.0, lt=1.0, panel=PANEL_DATA)


class TextFinetuneConfig(LabelledTexts, TrainOptions, LoRAOptions):
    """`text finetune`: the sentence encoder + a linear head, trained in full or with LoRA adapters."""

    model: str = option(DEFAULT_MODEL, "sentence-transformers folder or name (a BERT encoder, mean or CLS "
                        "pooling).", short="-m", panel=ENCODER)
    max_length: int = option(128, "Truncate texts to this many tokens.", ge=4, le=4096, panel=ENCODER)
    encoder_lr_factor: float | None = option(
        None, f"The encoder's learning rate (its weights, or its LoRA adapters) is --lr times this (default: "
        f"{FULL_ENCODER_LR_FACTOR} in full, {LORA_ENCODER_LR_FACTOR:g} with --lora).", gt=0, le=1.0, panel=ENCODER)
    seeds: SeedList = option(None, "Train once per seed (1,2,3) into RUN_DIR/seed-N and report the mean and std "
                             "of their best --val accuracy.", panel=PANEL_TRAIN)
    # The shared options, with fine-tuning's defaults (same meaning).
    epochs: int = option(10, "Passes over the training data.", ge=1, panel=PANEL_TRAIN)
    lr: float = option(1e-3, "Learning rate of the head (the encoder's: --lr x --encoder-lr-factor).", gt=0,
                       panel=PANEL_TRAIN)
    weight_decay: float = option(0.01, "Weight decay (never on biases, norms or LoRA's adapters' biases).", ge=0,
                                 panel=PANEL_TRAIN)
    batch_size: int = option(16, "Texts per micro-batch.", short="-b", ge=1, panel=PANEL_TRAIN)
    warmup: float = option(0.1, "Warm-up steps (or a fraction of all steps when below 1).", ge=0, panel=PANEL_TRAIN)
    clip_grad: float | None = option(1.0, "Clip the gradient norm to this.", gt=0, panel=PANEL_TRAIN)
    workers: int | None = option(0, "Data-loading processes (texts are tokenized up front: 0 is fastest).",
                                 ge=0, panel=PANEL_PLACEMENT, resume=True)

    def encoder_lr(self) -> float:
        factor = self.encoder_lr_factor
        if factor is None:
            factor = LORA_ENCODER_LR_FACTOR if self.lora else FULL_ENCODER_LR_FACTOR
        return self.lr * factor


class TextCompareConfig(LabelledTexts, Placement):
    """`text compare`: the adaptation ladder on one held-out split."""

    model: str = option(DEFAULT_MODEL, "sentence-transformers folder or name.", short="-m", panel=ENCODER)
    shots: list[int] = option([10, 32], "Comma-separated labelled texts per class for the trained rows.",
                              panel=LADDER)
    seeds: SeedList = option([0, 1, 2], "Seeds, comma-separated: each draws its own k-shot texts and initialises "
                             "its own head, prompt and adapters; the held-out texts stay the same (--seed).",
                             panel=LADDER)
    ranks: list[int] = option([4, 8, 16], "LoRA ranks, comma-separated: one row each.", panel=LADDER)
    methods: CommaList = option(list(LADDER_METHODS),
                                "Rows to run, comma-separated: zeroshot, probe, prompt (soft prompt), lora, full.",
                                panel=LADDER)
    label_template: str = option("This text is about {}.", "Zero-shot: how a label becomes a sentence ({} is the "
                                 "label).", panel=LADDER)
    epochs: int = option(20, "Passes over the k-shot texts for the trained rows (soft prompt, LoRA, full).", ge=1,
                         panel=LADDER)
    max_length: int = option(128, "Truncate texts to this many tokens.", ge=4, le=4096, panel=ENCODER)
    batch_size: int = option(16, "Texts per training batch.", short="-b", ge=1, panel=LADDER)
    quick: bool = option(False, "Tiny budgets (2 steps a trained row), to check the set-up, not to compare.",
                         panel=LADDER)
    seed: int = option(0, "Seed of the held-out split (when DATA is split, not --val).", ge=0, panel=PANEL_DATA)
    val_split: float = option(0.3, "Share of DATA held out as the test set every row is scored on "
                              "(stratified, seeded by --seed).", ge=0.0, lt=1.0, panel=PANEL_DATA)
    val: str | None = option(None, "Test data (same format): every row is scored on it; default: --val-split of "
                             "DATA.", panel=PANEL_DATA)

    @field_validator("shots", "ranks")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if not values or any(v < 1 for v in values):
            raise ValueError("expected positive numbers separated by commas, e.g. 10,32")
        return sorted(set(values))

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in LADDER_METHODS]
        if unknown or not names:
            raise ValueError(f"unknown method {unknown[0] if unknown else ''!r}; choose from "
                             f"{', '.join(LADDER_METHODS)}")
        return [m for m in LADDER_METHODS if m in names]

    @field_validator("label_template")
    @classmethod
    def _one_slot(cls, template: str) -> str:
        return ZeroshotConfig._one_slot(template)

    @model_validator(mode="after")
    def _held_out(self):
        if self.val is None and self.val_split <= 0:
            raise ValueError("compare scores every row on held-out texts: pass --val-split above 0 or --val FILE")
        return self
