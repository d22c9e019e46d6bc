"""The options of `tlcli zeroshot`, `probe`, `coop`, `compare` and `vprompt`: the one declaration of their
flags (see tlcli/fields.py). Pure data: no torch, no open_clip (a cached zeroshot or probe imports neither).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from tlcli.console.errors import UsageError
from tlcli.fields import (PANEL_DATA, PANEL_TRAIN, TOP_K, ClassNames, ImageColumns, ImageData, LoRAOptions,
                          MaxBadShare, Options, Placement, Seeded, TrainOptions, class_names, option)

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_N_CTX = 16  # CoOp's own default; coop and compare use the same
LORA_LR = 2e-4  # CLIP-LoRA's (Zanella & Ben Ayed 2024)
PANEL_CLIP = "CLIP model"
FEATURE_BATCH_HELP = ("Images per forward pass (default: 32 on the CPU, 256 on a GPU, where small batches leave "
                      "it idle).")


class ClipModelOptions(Options):
    """The CLIP model every command of the plugin runs, and its on-disk caches."""

    model: str = option(DEFAULT_MODEL, "open_clip name, hf-hub:ORG/NAME, local-dir:DIR, or a model-config .json "
                        "file.", short="-m", panel=PANEL_CLIP)
    pretrained: str | None = option(None, "Weight tag (default: laion2b_s34b_b79k for ViT-B-32), a weights FILE, "
                                    "or none (random init).", panel=PANEL_CLIP)
    cache: bool = option(True, "Read and write the feature and text-embedding caches.", panel=PANEL_CLIP,
                         resume=True)


class LabelledClipData(ImageData):
    """Labelled images (DATA, --val, --val-split, --max-bad) as the CLIP commands read them."""

    # CLIP's input size is its model's (the vision tower's positional embeddings fix it): not a flag here.
    image_size: None = option(None, flag=False)
    shots: int | None = option(None, "Use K labelled examples per class (seeded draw).", ge=1)


class ZeroshotConfig(ImageColumns, ClipModelOptions, Placement):
    paths: list[str] = option(..., "Image files, folders (recursive), tables, or - for paths on stdin.", argument=True,
                              metavar="PATHS", missing="pass image files, folders, or - (paths on stdin)")
    labels: ClassNames = option(None, "Comma-separated labels: cat,dog.", short="-l")
    labels_file: str | None = option(None, "One label per line.")
    templates: str = option("ensemble", "ensemble | single | FILE (one {} template per line).")
    prompt: str | None = option(None, "Use the prompts learned by a `tlcli coop` run.")
    vprompt: str | None = option(None, "Add the visual prompt learned by a `tlcli vprompt` run.")
    top_k: int = option(TOP_K, "How many labels to list per input.", short="-k", ge=1)
    threshold: float | None = option(None, "Below this probability the label is 'unknown'.", ge=0.0, le=1.0)
    evaluate: bool = option(False, "PATHS is labelled data (label subfolders, a CSV or a table): report accuracy.",
                            flag="--eval")
    batch_size: int | None = option(None, FEATURE_BATCH_HELP, short="-b", ge=1)
    max_bad: MaxBadShare = option(0.05, "Exit 2 when more input files than this are unreadable: a share (5%, "
                                  "0.05) or a count.", panel=PANEL_DATA)

    @model_validator(mode="after")
    def _consistent(self):
        if self.labels is not None and self.labels_file is not None:
            raise ValueError("pass --labels or --labels-file, not both")
        if (self.labels is None and self.labels_file is None and not self.evaluate and self.prompt is None
                and self.vprompt is None):
            raise ValueError("no labels: pass --labels cat,dog or --labels-file FILE (or --eval on class folders)")
        if self.prompt is not None and self.vprompt is not None:
            raise ValueError("--vprompt and --prompt: pass one of them")
        if self.prompt is not None and self.templates != "ensemble":
            raise ValueError("--prompt uses the learned prompts; drop --templates")
        return self

    def label_names(self) -> list[str] | None:
        """--labels, or the lines of --labels-file (checked alike), or None."""
        if self.labels_file is None:
            return self.labels
        try:
            lines = Path(self.labels_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"--labels-file {self.labels_file}: {getattr(error, 'strerror', None) or error}") from None
        try:
            return class_names(lines)
        except ValueError as error:
            raise UsageError(f"--labels-file {self.labels_file}: {error}") from None


class ProbeConfig(LabelledClipData, ClipModelOptions, Placement, Seeded):
    weight_decay: float | None = option(None, "Fixed weight decay (default: a sweep on the validation split).",
                                        ge=0)
    init: Literal["none", "zeroshot"] = option(
        "none", "none | zeroshot (start from, and stay near, the label text embeddings).")
    templates: str = option("ensemble", "Templates for --init zeroshot.")
    batch_size: int | None = option(None, FEATURE_BATCH_HELP, short="-b", ge=1)

    @model_validator(mode="after")
    def _held_out(self):
        if self.val is None and self.val_split <= 0:
            raise ValueError("the probe picks its weight decay on held-out images: pass --val-split above 0 "
                             "or --val DIR")
        return self


class CoopConfig(LabelledClipData, ClipModelOptions, TrainOptions, LoRAOptions):
    """``--workers`` are decoding threads here: training batches come from features in memory, where
    DataLoader processes would only cost. ``--batch-size`` is both the training batch and the
    feature-extraction batch.

    ``--lora RANK`` trains CLIP-LoRA instead of soft prompts: adapters in both towers' attention, the
    hand-written prompt "a photo of a {}." (no context vectors), the images through the image tower every
    step; ``--lr`` defaults to the paper's 2e-4 then."""

    n_ctx: int = option(DEFAULT_N_CTX, "Number of learned context vectors.", ge=1, le=64)
    init: str | None = option(None, 'Initialise the context from a phrase, e.g. "a photo of a".')
    class_specific: bool = option(False, "One context per class (CSC).")
    epochs: int = option(50, "Passes over the training data.", ge=1, panel=PANEL_TRAIN)
    lr: float = option(2e-3, "Learning rate of the context vectors (with --lora, of the adapters: default "
                       "2e-4).", gt=0, panel=PANEL_TRAIN)
    weight_decay: float = option(0.0, "Weight decay of the context vectors.", ge=0, panel=PANEL_TRAIN)

    @model_validator(mode="after")
    def _lora_has_no_context(self):
        """With ``--lora`` no context vectors are learned: their options would be silently ignored."""
        if self.lora is None:
            return self
        given = [flag for field, flag in (("n_ctx", "--n-ctx"), ("init", "--init"),
                                          ("class_specific", "--class-specific"))
                 if field in self.model_fields_set and getattr(self, field) not in (None, False)]
        if given:
            raise ValueError(f"--lora trains CLIP-LoRA adapters with the prompt \"a photo of a {{}}.\", no learned "
                             f"context; drop {', '.join(given)}")
        if "lr" not in self.model_fields_set:
            self.lr = LORA_LR
        return self


class VPromptConfig(LabelledClipData, ClipModelOptions, TrainOptions):
    """``--workers`` are decoding threads here: the decoded pixels are in memory, where DataLoader processes
    would only cost."""

    pad: int = option(30, "Width of the learned padding, in pixels of the model's input.", ge=1)
    templates: str = option("ensemble", "ensemble | single | FILE: the fixed class embeddings.")
    epochs: int = option(20, "Passes over the training data.", ge=1, panel=PANEL_TRAIN)
    lr: float = option(0.1, "Learning rate of the prompt pixels.", gt=0, panel=PANEL_TRAIN)
    weight_decay: float = option(0.0, "Weight decay of the prompt pixels.", ge=0, panel=PANEL_TRAIN)


class CompareConfig(LabelledClipData, ClipModelOptions, Placement, Seeded):
    shots: list[int] = option([1, 4, 16], "Comma-separated images per class for the trained methods.")
    templates: str = option("ensemble", "ensemble | single | FILE (one {} template per line).")
    n_ctx: int = option(DEFAULT_N_CTX, "CoOp context vectors.", ge=1, le=64)
    coop_epochs: int = option(30, "CoOp's passes over the training images.", ge=1)
    coop: bool = option(True, "Run CoOp (the slowest method).")
    vprompt: bool = option(False, "Also learn a visual prompt (runs the image tower every step).")
    vprompt_epochs: int = option(10, "The visual prompt's passes over the training images.", ge=1)
    vprompt_pad: int = option(30, "Width of the visual prompt, in pixels.", ge=1)
    lora: int | None = option(None, "Also train CLIP-LoRA adapters of this rank in both towers (runs both towers "
                              "every step).", ge=1, metavar="RANK")
    lora_epochs: int = option(10, "CLIP-LoRA's passes over the training images.", ge=1)
    batch_size: int | None = option(None, FEATURE_BATCH_HELP + " CoOp trains with 32 when not given.", short="-b",
                                    ge=1)

    @field_validator("shots", mode="before")
    @classmethod
    def _shot_list(cls, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        try:
            shots = [int(part) for part in value]
        except (TypeError, ValueError):
            shots = []
        if not shots or any(k < 1 for k in shots):
            raise ValueError("expected positive numbers, e.g. 16 or 1,4,16")
        return shots

    @model_validator(mode="after")
    def _held_out(self):
        if self.val is None and self.val_split <= 0:
            raise ValueError("compare scores every method on held-out images: pass --val-split above 0 or --val DIR")
        return self
