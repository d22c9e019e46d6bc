"""Domain-adversarial training (DANN, Ganin & Lempitsky 2015) for `tlcli finetune --domain-adapt TARGET`.

The classifier's features also feed a domain classifier (source or target?) through a gradient reversal
layer: the domain classifier learns to tell the domains apart, while the reversed gradient pushes the
backbone towards features it cannot tell apart, so the label head trained on the source transfers to the
target. The reversal's strength follows the paper's schedule ``λ(p) = 2 / (1 + exp(-10 p)) - 1`` (p: the
share of training done), scaled by ``--dann-weight``. Only the classifier is exported (the domain head is
dropped), so predict/evaluate read the run like any fine-tuned one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tlcli.data.decoded import DecodedImages, train_transform
from tlcli.engine.params import discriminative_groups
from tlcli_finetune.task import FinetuneTask


class GradientReversal(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the gradient by ``-scale``."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float) -> torch.Tensor:
    return GradientReversal.apply(x, scale)


def dann_lambda(progress: float, weight: float = 1.0) -> float:
    """The paper's schedule: 0 at the start, rising to ``weight`` (about 0.99 * weight at the end); the
    domain signal is held back while the features are still noise."""
    progress = min(1.0, max(0.0, progress))
    return weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class DomainClassifier(nn.Sequential):
    """Features -> one logit (target = 1). Two hidden layers, like the paper's (narrower)."""

    def __init__(self, width: int, hidden: int = 256):
        super().__init__(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(hidden, 1))


class DannModel(nn.Module):
    """The classifier and a domain head on the classifier head's input (its features). ``forward(images)``
    returns logits; ``forward(images, scale)`` also the domain logits behind a reversal of ``scale``."""

    def __init__(self, classifier: nn.Module, head_name: str):
        super().__init__()
        self.classifier = classifier
        head = classifier.get_submodule(head_name)
        self.domain = DomainClassifier(head.in_features)
        self._features: list[torch.Tensor] = []
        head.register_forward_hook(lambda module, inputs, output: self._features.append(inputs[0]))

    def forward(self, images: torch.Tensor, scale: float | None = None):
        self._features.clear()
        logits = self.classifier(images)
        if scale is None:
            return logits
        features = self._features[-1].flatten(1)
        self._features.clear()
        return logits, self.domain(grad_reverse(features, scale)).squeeze(1)


def head_name(classifier: nn.Module) -> str:
    """The classifier head's module name: timm's get_classifier(), else the last linear layer (where
    tlcli's model factory puts the new head of torchvision models and CLIP towers)."""
    if hasattr(classifier, "get_classifier"):
        head = classifier.get_classifier()
        return next(name for name, module in classifier.named_modules() if module is head)
    return [name for name, module in classifier.named_modules() if isinstance(module, nn.Linear)][-1]


class DomainPairs(torch.utils.data.Dataset):
    """``dataset[(index, seed)] -> (source image, label, target image)``: the target image is drawn by the
    sample's seed, so pairs (and their augmentation) survive resume and worker count."""

    def __init__(self, source: DecodedImages, target: DecodedImages, transform):
        self.source, self.target, self.transform = source, target, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            source = self.transform(self.source.image(index))
            target = self.transform(self.target.image(seed % len(self.target)))
        return source, self.source.labels[index], target


class DannTask(FinetuneTask):
    def __init__(self, cfg, classes, train, val, preprocessing, run, target: DecodedImages):
        super().__init__(cfg, classes, train, val, preprocessing, run)
        self.target = target
        self.step, self.total_steps = 0, 1

    def describe(self) -> dict:
        return {**super().describe(), "domain_adapt": self.cfg.domain_adapt, "dann_weight": self.cfg.dann_weight,
                "target_images": len(self.target)}

    def build_model(self):
        classifier = super().build_model()
        self._total_steps()
        return DannModel(classifier, head_name(classifier))

    def heads(self, model) -> list[str]:
        """The classifier's new head and the whole domain classifier train in full beside the adapters."""
        return [f"classifier.{name}" for name in self._head_names] + ["domain"]

    def blocks(self, model):
        from tlcli.engine.params import list_blocks

        return list_blocks(model.classifier) if self.cfg.lora else self._blocks

    def _total_steps(self) -> None:
        from tlcli.engine.loop import EpochBatches

        world = int(os.environ.get("WORLD_SIZE", "1"))
        batches = len(EpochBatches(len(self._train), self.cfg.batch_size, self.cfg.seed, 0, world).batches(0))
        total = -(-batches // self.cfg.accumulate) * self.cfg.epochs
        self.total_steps = max(1, min(total, self.cfg.max_steps or total))

    def param_groups(self, model, blocks, include_frozen: bool):
        first = next((i for i, b in enumerate(blocks) if b.trainable), len(blocks))
        groups = discriminative_groups(model.classifier, blocks, first, self.cfg.lr, self.cfg.lr_decay,
                                       self.cfg.weight_decay, include_frozen=include_frozen)
        from tlcli.engine.params import ParamGroup

        return groups + [ParamGroup("domain", list(model.domain.parameters()), self.cfg.lr, self.cfg.weight_decay)]

    def train_dataset(self):
        return DomainPairs(self._train, self.target, train_transform(self.preprocessing, self.cfg.augment))

    def collate(self, items):
        if len(items[0]) == 2:  # validation: (image, label)
            return super().collate(items)
        return (torch.stack([i[0] for i in items]), torch.tensor([i[1] for i in items], dtype=torch.long),
                torch.stack([i[2] for i in items]))

    def batch_size_of(self, batch) -> int:
        return batch[1].shape[0]

    def lambda_now(self) -> float:
        return dann_lambda(self.step / self.total_steps, self.cfg.dann_weight)

    def on_optimizer_step(self, model, step: int) -> None:
        self.step = step

    def on_resume(self, model, step: int) -> None:
        self.step = step  # the reversal's strength follows the step: a resume must not restart it at 0

    def training_step(self, model, batch):
        source, labels, target = batch
        logits, domain_logits = model(torch.cat([source, target]), self.lambda_now())
        n = source.shape[0]
        domains = torch.cat([torch.zeros(n), torch.ones(target.shape[0])]).to(domain_logits.device)
        label_loss = F.cross_entropy(logits[:n], labels)
        domain_loss = F.binary_cross_entropy_with_logits(domain_logits.float(), domains)
        return label_loss + domain_loss

    def export(self, model, run_dir: Path, result) -> None:
        super().export(model.classifier, run_dir, result)  # the domain head is dropped


def load_target(cfg, preprocessing: dict, bad) -> DecodedImages:
    """The unlabelled target images of ``--domain-adapt`` (folders walked recursively, tables; labels
    ignored)."""
    from tlcli.data.sources import LabelledSample, expand_paths
    from tlcli.data.tables import Columns
    from tlcli.console.errors import UsageError

    found, skipped = expand_paths([cfg.domain_adapt], columns=Columns(image=cfg.image_column))
    bad.extend(skipped)
    if not found:
        raise UsageError(f"--domain-adapt {cfg.domain_adapt}: no images found; pass a folder of target images")
    target = DecodedImages([LabelledSample(p, "") for p in found], [], preprocessing, bad)
    if len(target) == 0:
        raise UsageError(f"--domain-adapt {cfg.domain_adapt}: no readable images")
    return target
