"""The options of `tlcli finetune`: the one declaration of its flags (see tlcli/fields.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from tlcli.fields import ImageData, LoRAOptions, TrainOptions, option

# Bytes per pixel of one training image on its way to the model: the resized uint8 image kept in memory (3),
# its float32 tensor (12), and at least as much again for the first layer's activations (a lower bound).
BYTES_PER_PIXEL = 3 + 12 + 12
MODEL = "Model"
DEFAULT_MODEL = "resnet50"
ADAPT = "Domain adaptation and seeds"


class FinetuneConfig(ImageData, TrainOptions, LoRAOptions):
    model: str | None = option(None, "torchvision name, timm:NAME or clip:NAME (default: the model of --weights "
                               f"RUN_DIR, else {DEFAULT_MODEL}).", short="-m", panel=MODEL)
    pretrained: str = option("default", "default | none | a weight tag.", panel=MODEL)
    weights: str | None = option(None, "Local weights: safetensors, a state dict, or a run's model/ "
                                 "folder.", panel=MODEL)
    freeze_until: str | None = option(None, "Freeze every block up to and including this one (see `tlcli "
                                      "layers`).", panel=MODEL)
    train_bn: bool = option(False, "Let frozen BatchNorm layers update their statistics.", panel=MODEL)
    unfreeze_every: int | None = option(None, "Unfreeze the next block down every E epochs.", ge=1, panel=MODEL)
    lr_decay: float = option(1.0, "Multiply --lr (the head's) by this for each earlier block.", gt=0, le=1.0,
                             panel=MODEL)
    augment: Literal["none", "light", "strong"] = option("light", "none | light | strong", panel=MODEL)
    domain_adapt: str | None = option(None, "Unlabelled target-domain images: domain-adversarial training "
                                      "(DANN).", panel=ADAPT)
    dann_weight: float = option(1.0, "Scale of the DANN gradient reversal (its schedule rises from 0 to this).",
                                ge=0, panel=ADAPT)
    seeds: list[int] | None = option(None, "Train once per seed (1,2,3) into RUN_DIR/seed-N and report the mean "
                                     "and std of their best --val accuracy.", panel=ADAPT)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, value):
        """``"1,2,3"`` (the flag) or ``[1, 2, 3]`` (a config file): distinct integers."""
        if value is None:
            return None
        parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else value
        try:
            seeds = [int(p) for p in parts if p != ""]
        except (TypeError, ValueError):
            raise ValueError("expected integers separated by commas, e.g. 1,2,3") from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError("expected distinct integers separated by commas, e.g. 1,2,3")
        if any(s < 0 or s >= 2**32 for s in seeds):
            raise ValueError("each seed must be between 0 and 4294967295")
        return seeds

    @model_validator(mode="after")
    def _lora_replaces_freezing(self):
        """``--lora`` trains adapters in every targeted layer and the head, the base frozen: freezing blocks
        up to one, or unfreezing them over time, has nothing left to act on. (``--lr-decay`` still scales
        each block's adapters' learning rate.)"""
        if self.lora is not None:
            clash = [flag for flag, value in (("--freeze-until", self.freeze_until),
                                              ("--unfreeze-every", self.unfreeze_every)) if value is not None]
            if clash:
                raise ValueError(f"--lora freezes the whole base and trains adapters; drop {' and '.join(clash)} "
                                 "(choose the adapted layers with --lora-targets)")
        return self

    @model_validator(mode="after")
    def _model_from_weights(self):
        """``--weights RUN_DIR`` without ``--model`` trains the model that run names; a different --model
        is refused (its weights would not fit)."""
        named = model_named_by(self.weights)
        if self.model is None:
            self.model = named or DEFAULT_MODEL
        elif named is not None and named != self.model:
            raise ValueError(f"--weights {self.weights} holds a {named} model; drop --model (or pass --model "
                             f"{named})")
        return self


def model_named_by(weights: str | None) -> str | None:
    """The model a ``--weights`` run folder or model folder names in its model.json (None for a file)."""
    if not weights:
        return None
    import json
    from pathlib import Path

    from tlcli.runs.artifacts import MODEL_JSON, model_dir_of

    path = Path(weights)
    if not path.is_dir():
        return None
    try:
        meta = json.loads((model_dir_of(path) / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    named = meta.get("model") if isinstance(meta, dict) else None
    return named if isinstance(named, str) and named else None


def check_image_size(cfg: FinetuneConfig) -> None:
    """Refuse an ``--image-size`` whose batch alone would not fit in memory (``--image-size 100000`` was
    killed by the OOM killer at 23 GB instead of being told so). A check of this machine, not of the
    options: the job makes it before any work."""
    if not cfg.image_size:
        return
    from tlcli.console.errors import UsageError

    needed = cfg.image_size**2 * BYTES_PER_PIXEL * cfg.batch_size
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # no psutil or no /proc: assume a generous machine rather than refuse
        available = 256 * 2**30
    if needed > available:
        raise UsageError(f"--image-size {cfg.image_size}: one batch of {cfg.batch_size} needs at least "
                         f"{needed / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB free; "
                         "use a smaller --image-size (224 is usual) or --batch-size")
