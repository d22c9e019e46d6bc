"""The validated options of `tlcli prompt-tune` (saved as the run's config.json; --resume reads it back)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tlcli.engine.task import TrainConfig


class PromptTuneConfig(TrainConfig):
    data: str
    mode: Literal["classify", "generate"] = "classify"
    model: str = "all-MiniLM-L6-v2"
    val: str | None = None
    val_split: float = Field(0.2, ge=0.0, lt=1.0)
    virtual_tokens: int = Field(20, ge=1, le=512)
    init_text: str | None = None
    lr: float = Field(3e-2, gt=0)
    head_lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(128, ge=4)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    clip_grad: float | None = Field(1.0, gt=0)
    # Texts are tokenized up front; worker processes would only add start-up time.
    workers: int | None = Field(0, ge=0)

    @model_validator(mode="after")
    def _monitor_for_mode(self):
        # Generation has no accuracy; the best checkpoint is the one with the lowest validation loss.
        if self.mode == "generate" and self.monitor == "val_accuracy":
            self.monitor, self.monitor_mode = "val_loss", "min"
        return self
