"""What the engine runs: a Task built by a plugin, and the training options every trainable command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tlcli.fields import MaxBadShare, TrainOptions  # noqa: F401  (MaxBadShare: re-exported for configs)


# The shared loop's options are the one declaration in tlcli/fields.py (each field is also a flag).
TrainConfig = TrainOptions


class Task:
    """A unit of training the engine can run. A plugin subclasses it and overrides what it needs; the
    engine knows nothing else about the plugin.

    Must override: ``build_model``, ``train_dataset``, ``training_step`` and ``describe`` (at least
    ``command``, ``plugin``, ``model`` for the run_start event). The rest has defaults.

    Datasets: ``train_dataset()[(index, seed)]`` returns one sample, augmented with randomness drawn only
    from ``seed`` (so data order and augmentation survive resume and worker count);
    ``val_dataset()[index]`` returns one unaugmented sample (or the method returns None).
    """

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def build_model(self):
        """The model with its initial freezing applied (frozen parameters have requires_grad False)."""
        raise NotImplementedError

    def frozen_modules(self, model) -> list[str]:
        """Dotted names of submodules that never train (a frozen CLIP, a teacher). The engine keeps them
        in eval mode with no gradients, leaves them out of checkpoints, parameter groups and DDP, and
        counts their parameters as frozen."""
        return []

    def adapters(self, model) -> list[str]:
        """With ``--lora``: the module names that get LoRA adapters (``cfg.lora_targets`` matched against
        the model, else the attention projections and MLP linears), outside ``heads``."""
        from tlcli.adapters.lora import resolve_targets

        patterns = getattr(getattr(self, "cfg", None), "lora_targets", None)
        return resolve_targets(model, patterns, self.heads(model))

    def heads(self, model) -> list[str]:
        """Module names that train in full beside LoRA adapters (a new classifier head)."""
        return []

    def blocks(self, model) -> list:
        """The model's blocks (tlcli.engine.params.Block) in input-to-output order."""
        from tlcli.engine.params import list_blocks

        return list_blocks(model)

    def param_groups(self, model, blocks, include_frozen: bool) -> list:
        """tlcli.engine.params.ParamGroup list; with include_frozen, frozen blocks get groups too (for
        gradual unfreezing). Default: one group at ``self.lr`` (``cfg.lr``), no decay on biases and norms."""
        from tlcli.engine.params import discriminative_groups

        cfg = getattr(self, "cfg", None)
        lr = getattr(self, "lr", None) or getattr(cfg, "lr", 1e-3)
        decay = getattr(cfg, "weight_decay", 0.0) or 0.0
        first = next((i for i, b in enumerate(blocks) if b.trainable), len(blocks))
        return discriminative_groups(model, blocks, first, lr, 1.0, decay, include_frozen)

    def train_dataset(self):
        raise NotImplementedError

    def val_dataset(self):
        return None

    def collate(self, items: list) -> Any:
        from torch.utils.data import default_collate

        return default_collate(items)

    def batch_size_of(self, batch) -> int:
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        if isinstance(first, dict):
            first = next(iter(first.values()))
        return len(first)

    def training_step(self, model, batch):
        """The loss (a scalar tensor) of one batch."""
        raise NotImplementedError

    def validation_step(self, model, batch) -> tuple[dict[str, float], int | dict[str, int]]:
        """Per-batch sums of metrics (``val_loss``, ``val_accuracy``...) and how many samples they sum over:
        one int for all, or ``{metric: count}`` where metrics count different things (tokens, samples)."""
        raise NotImplementedError(f"{type(self).__name__} has a validation set but no validation_step")

    def derived_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Metrics computed from the validation averages (a perplexity from the mean token loss), added to
        them. Default: none."""
        return {}

    def evaluate(self, model, device) -> dict[str, float] | None:
        """Metrics over the whole validation set at once (a kNN accuracy needs every feature); None (the
        default) means: average ``validation_step`` over batches instead."""
        return None

    def log_metrics(self) -> dict[str, float]:
        """The task's own training metrics since the last call (a preference method's reward accuracy and
        margins), merged into each ``metric`` event beside the loss; the task averages what its
        ``training_step`` saw and starts again. Default: none. This process's batches only under torchrun."""
        return {}

    def on_optimizer_step(self, model, step: int) -> None:
        """After every optimizer step (an EMA teacher's update, a schedule of the task's own)."""

    def on_resume(self, model, step: int) -> None:
        """A resumed run continues after optimizer step ``step``: a schedule of the task's own (kept up to
        date by ``on_optimizer_step``) must pick up there, not at 0, or the resume is not exact."""

    def export(self, model, run_dir: Path, result) -> None:
        """Write ``run_dir/model/`` atomically (``tlcli.runs.artifacts.write_model`` into a temporary folder that
        is renamed into place; the Run's ``model_writer()`` does both)."""


class ClassifierTask(Task):
    """A Task whose batches are ``(inputs, labels)`` and whose model maps inputs to class logits: trained
    with cross-entropy, validated on summed loss and accuracy (finetune, CoOp, vprompt, pseudo-label rounds)."""

    def batch_size_of(self, batch) -> int:
        return batch[1].shape[0]

    def training_step(self, model, batch):
        import torch.nn.functional as F

        inputs, labels = batch
        return F.cross_entropy(model(inputs), labels)

    def validation_step(self, model, batch):
        inputs, labels = batch
        return classification_sums(model(inputs), labels)


def classification_sums(logits, labels) -> tuple[dict[str, float], int]:
    """What a classifier's ``validation_step`` returns: summed cross-entropy and correct predictions, and
    the number of samples (the engine averages over the whole validation set)."""
    import torch.nn.functional as F

    logits = logits.float()
    loss = F.cross_entropy(logits, labels, reduction="sum")
    correct = (logits.argmax(dim=1) == labels).sum()
    return {"val_loss": loss.item(), "val_accuracy": correct.item()}, labels.shape[0]
