"""What the engine runs: a Task built by a plugin, and the training options every trainable command shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Options of the shared loop. Plugins embed these in their own config."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    accumulate: int = Field(1, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    scheduler: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup: float = Field(0.0, ge=0, description="steps, or a fraction of all steps when below 1")
    clip_grad: float | None = Field(None, gt=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    workers: int | None = Field(None, ge=0)
    early_stop: int | None = Field(None, ge=1)
    save_every: int | None = Field(None, ge=1)
    checkpoint_interval_s: float = Field(60.0, ge=0, description="epoch-end checkpoints at most this often")
    unfreeze_every: int | None = Field(None, ge=1)
    train_bn: bool = False
    monitor: str = "val_accuracy"
    monitor_mode: Literal["max", "min"] = "max"
    compile: bool = False
    log_every: int | None = Field(None, ge=1)

    def resolved_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return min(4, max(0, (os.cpu_count() or 1) - 1))


class Task(Protocol):
    """A unit of training the engine can run. Plugins implement this; the engine knows nothing else.

    Datasets: ``train_dataset()[(index, seed)]`` returns one sample, augmented with randomness drawn only
    from ``seed`` (so data order and augmentation survive resume and worker count);
    ``val_dataset()[index]`` returns one unaugmented sample (or the whole method returns None).
    """

    def describe(self) -> dict[str, Any]:
        """For the run_start event: at least ``command``, ``plugin`` and ``model``."""

    def build_model(self):
        """The model with its initial freezing applied (frozen parameters have requires_grad False)."""

    def blocks(self, model) -> list:
        """The model's blocks (tlcli.engine.params.Block) in input-to-output order."""

    def param_groups(self, model, blocks, include_frozen: bool) -> list:
        """tlcli.engine.params.ParamGroup list; with include_frozen, frozen blocks get groups too (for
        gradual unfreezing)."""

    def train_dataset(self): ...

    def val_dataset(self): ...

    def collate(self, items: list) -> Any: ...

    def batch_size_of(self, batch) -> int: ...

    def training_step(self, model, batch):
        """The loss (a scalar tensor) of one batch."""

    def validation_step(self, model, batch) -> tuple[dict[str, float], int]:
        """Per-batch sums of metrics (``val_loss``, ``val_accuracy``...) and the number of samples."""

    def export(self, model, run_dir: Path, result) -> None:
        """Write ``run_dir/model/`` (safetensors + labels + preprocessing) atomically."""


def classification_sums(logits, labels) -> tuple[dict[str, float], int]:
    """What a classifier's ``validation_step`` returns: summed cross-entropy and correct predictions, and
    the number of samples (the engine averages over the whole validation set)."""
    import torch.nn.functional as F

    logits = logits.float()
    loss = F.cross_entropy(logits, labels, reduction="sum")
    correct = (logits.argmax(dim=1) == labels).sum()
    return {"val_loss": loss.item(), "val_accuracy": correct.item()}, labels.shape[0]
