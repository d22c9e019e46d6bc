"""The validated options of `tlcli finetune` (flags, or a TOML file whose keys are the flag names)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tlcli.engine.task import TrainConfig


class FinetuneConfig(TrainConfig):
    data: str
    val: str | None = None
    val_split: float = Field(0.2, ge=0.0, lt=1.0)
    model: str = "resnet50"
    pretrained: str = "default"
    weights: str | None = None
    freeze_until: str | None = None
    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(1.0, gt=0, le=1.0)
    weight_decay: float = Field(0.05, ge=0)
    augment: Literal["none", "light", "strong"] = "light"
    image_size: int | None = Field(None, ge=8)
    max_bad: float = Field(0.05, ge=0, le=1)
    epochs: int = Field(10, ge=1)
    domain_adapt: str | None = None  # DANN: unlabelled target images (tlcli_finetune.dann)
    dann_weight: float = Field(1.0, ge=0)
