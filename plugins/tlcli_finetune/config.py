"""The validated options of `tlcli finetune` (flags, or a TOML file whose keys are the flag names)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tlcli.cli.options import VAL_SPLIT
from tlcli.engine.task import MaxBadShare, Seed, TrainConfig

DEFAULT_MODEL = "resnet50"

# Bytes per pixel of one training image on its way to the model: the resized uint8 image kept in memory (3),
# its float32 tensor (12), and at least as much again for the first layer's activations (a lower bound).
BYTES_PER_PIXEL = 3 + 12 + 12


class FinetuneConfig(TrainConfig):
    data: str
    val: str | None = None
    val_split: float = Field(VAL_SPLIT, ge=0.0, lt=1.0)
    model: str | None = None  # default: the model of a --weights run folder, else DEFAULT_MODEL
    pretrained: str = "default"
    weights: str | None = None
    freeze_until: str | None = None
    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(1.0, gt=0, le=1.0)
    weight_decay: float = Field(0.05, ge=0)
    augment: Literal["none", "light", "strong"] = "light"
    image_size: int | None = Field(None, ge=8)
    max_bad: MaxBadShare = 0.05
    epochs: int = Field(10, ge=1)
    domain_adapt: str | None = None  # DANN: unlabelled target images (tlcli_finetune.dann)
    dann_weight: float = Field(1.0, ge=0)
    seeds: list[Seed] | None = None  # --seeds: one run per seed in RUN_DIR/seed-N (tlcli_finetune.seeds)

    @model_validator(mode="after")
    def _model_from_weights(self):
        """``--weights RUN_DIR`` without ``--model`` trains the model that run names; a different --model
        is refused (its weights would not fit)."""
        named = model_named_by(self.weights)
        if self.model is None:
            self.model = named or DEFAULT_MODEL
        elif named is not None and named != self.model:
            from tlcli.errors import UsageError

            raise UsageError(f"--model {self.model}: --weights {self.weights} holds a {named} model; drop "
                             f"--model (or pass --model {named})")
        return self


def model_named_by(weights: str | None) -> str | None:
    """The model a ``--weights`` run folder or model folder names in its model.json (None for a file)."""
    if not weights:
        return None
    import json
    from pathlib import Path

    from tlcli.artifacts import MODEL_JSON, model_dir_of

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
    killed by the OOM killer at 23 GB instead of being told so)."""
    if not cfg.image_size:
        return
    from tlcli.errors import UsageError

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
