"""The validated options of `tlcli distill`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tlcli.engine.task import TrainConfig

# The hint term's weight: mean-squared penultimate features (post-ReLU pooled activations, a CLIP image
# embedding) are of order 0.1-1, the same order as the T^2-scaled KL term, so 1 gives both a say.
FEATURE_WEIGHT = 1.0


class DistillConfig(TrainConfig):
    data: str | None = None
    unlabelled: str | None = None
    val: str | None = None
    val_split: float = Field(0.2, ge=0.0, lt=1.0)
    teacher: str
    teacher_pretrained: str | None = None
    labels: list[str] | None = None
    templates: str = "ensemble"
    student: str = "mobilenet_v3_small"
    pretrained: str = "default"
    weights: str | None = None
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.7, ge=0.0, le=1.0)
    feature_loss: bool = False  # FitNets-style hint: MSE of regressed student features to the teacher's
    feature_weight: float = Field(FEATURE_WEIGHT, ge=0.0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    augment: Literal["none", "light", "strong"] = "none"
    image_size: int | None = Field(None, ge=8)
    use_cache: bool = True
    max_bad: float = Field(0.05, ge=0, le=1)

    @model_validator(mode="after")
    def _some_images(self):
        if not self.data and not self.unlabelled:
            raise ValueError("pass labelled DATA, --unlabelled DIR, or both")
        return self
