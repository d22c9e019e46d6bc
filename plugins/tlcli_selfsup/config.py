"""The validated options of `tlcli pretrain` and `tlcli pseudolabel`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tlcli.engine.task import TrainConfig

PRETEXT_TASKS = ("rotation", "jigsaw", "simclr", "mae")


class ImageTrainConfig(TrainConfig):
    """What every image-training command of this plugin shares."""

    model: str = "resnet18"
    pretrained: str = "none"
    image_size: int | None = Field(None, ge=8)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    max_bad: float = Field(0.05, ge=0, le=1)


class PretrainConfig(ImageTrainConfig):
    data: list[str] = Field(min_length=1)
    task: Literal["rotation", "jigsaw", "simclr", "mae"] = "rotation"
    val: str | None = None
    knn_k: int = Field(20, ge=1)
    temperature: float = Field(0.2, gt=0, description="NT-Xent temperature (simclr)")
    permutations: int = Field(30, ge=2, le=1000, description="jigsaw permutation set size")
    mask_ratio: float = Field(0.5, gt=0, lt=1, description="share of patches hidden (mae)")


class PseudolabelConfig(ImageTrainConfig):
    data: str
    unlabelled: str
    start: str = Field(description="--from: a finetune run (a classifier) or a pretrain run (a backbone)")
    val: str | None = None
    val_split: float = Field(0.2, ge=0.0, lt=1.0)
    threshold: float = Field(0.9, ge=0, le=1)
    rounds: int = Field(3, ge=1)
    per_class_cap: int | None = Field(None, ge=1)
    augment: Literal["none", "light", "strong"] = "light"
