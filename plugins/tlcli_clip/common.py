"""What probe, coop and compare share: their validated options, labelled data, the seeded split, k-shot
sampling, features."""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tlcli.cli.options import VAL_SPLIT
from tlcli.data.bad_files import BadFiles
from tlcli.data.sources import LabelledSample, load_labelled, stratified_split
from tlcli.engine.task import MaxBadShare, Seed
from tlcli.errors import UsageError
from tlcli.output import info

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_N_CTX = 16  # CoOp's own default; coop and compare use the same


class ClipOptions(BaseModel):
    """The options every CLIP command that builds a run shares (flag names, one default each)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data: str
    model: str = DEFAULT_MODEL
    pretrained: str | None = None
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    batch_size: int | None = Field(None, ge=1)
    workers: int | None = Field(None, ge=0)
    no_cache: bool = False
    max_bad: MaxBadShare = 0.05
    seed: Seed = 0
    val_split: float = Field(VAL_SPLIT, gt=0.0, lt=1.0)

    @property
    def use_cache(self) -> bool:
        return not self.no_cache


class ProbeConfig(ClipOptions):
    shots: int | None = Field(None, ge=1)
    weight_decay: float | None = Field(None, ge=0)
    init: Literal["none", "zeroshot"] = "none"
    templates: str = "ensemble"


class CompareConfig(ClipOptions):
    shots: list[int] = Field(min_length=1)
    templates: str = "ensemble"
    n_ctx: int = Field(DEFAULT_N_CTX, ge=1, le=64)
    coop_epochs: int = Field(30, ge=1)
    no_coop: bool = False
    vprompt: bool = False
    vprompt_epochs: int = Field(10, ge=1)
    vprompt_pad: int = Field(30, ge=1)


def k_shot(samples: list[LabelledSample], shots: int | None, seed: int) -> list[LabelledSample]:
    """At most ``shots`` samples of each class, drawn by ``seed``; input order kept."""
    if shots is None:
        return list(samples)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        by_label[sample.label].append(index)
    rng = random.Random(seed * 31 + 7)
    chosen: set[int] = set()
    for label in sorted(by_label):
        indices = by_label[label]
        chosen.update(indices if len(indices) <= shots else rng.sample(indices, shots))
    return [s for i, s in enumerate(samples) if i in chosen]


def shots_used(samples: list[LabelledSample], shots: int | None) -> dict:
    """What ``--shots`` gave: the number asked, and the fewest and most images any class really got (a
    class with fewer images than asked uses all it has, and the summary says so)."""
    counts: dict[str, int] = defaultdict(int)
    for sample in samples:
        counts[sample.label] += 1
    short = sorted(label for label, n in counts.items() if shots is not None and n < shots)
    return {"asked": shots, "min_per_class": min(counts.values(), default=0),
            "max_per_class": max(counts.values(), default=0), "classes_short": short}


def report_short_shots(used: dict, quiet: bool) -> None:
    if used["classes_short"] and not quiet:
        names = ", ".join(used["classes_short"][:5]) + (", ..." if len(used["classes_short"]) > 5 else "")
        info(f"--shots {used['asked']}: {len(used['classes_short'])} class(es) have fewer training images "
             f"({names}); using {used['min_per_class']} to {used['max_per_class']} per class")


@dataclass
class Split:
    classes: list[str]
    train: list[LabelledSample]
    val: list[LabelledSample]


def split_data(data: str, val_split: float, seed: int, bad: BadFiles) -> Split:
    samples = load_labelled(Path(data), bad_files=bad)
    train, val = stratified_split(samples, val_split, seed)
    classes = sorted({s.label for s in samples})
    if len(classes) < 2:
        raise UsageError(f"{data}: found {len(classes)} class; at least two are needed")
    return Split(classes, train, val)


@dataclass
class LabelledFeatures:
    x: np.ndarray  # (N, D) float32, not normalised
    y: np.ndarray  # (N,) int64 class indices
    paths: list[Path]

    # As torch tensors (shared memory) for coop; the probe stays in NumPy and, with every feature cached,
    # never imports torch.
    @property
    def features(self):
        import torch

        return torch.from_numpy(self.x)

    @property
    def labels(self):
        import torch

        return torch.from_numpy(self.y)


def labelled_features(clip, samples: list[LabelledSample], classes: list[str], bad: BadFiles, cfg,
                      quiet: bool, stats: dict) -> LabelledFeatures:
    """Features of ``samples`` (bad files reported and dropped), counting cache hits into ``stats``.
    ``cfg`` gives ``batch_size``, ``workers`` and ``use_cache``."""
    from tlcli.features import image_features

    result = image_features(clip, [s.path for s in samples], bad, batch_size=cfg.batch_size,
                            workers=cfg.workers, use_cache=cfg.use_cache, quiet=quiet)
    stats["cached"] = stats.get("cached", 0) + result.cached
    stats["computed"] = stats.get("computed", 0) + result.computed
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[samples[i].label] for i in result.kept], dtype=np.int64)
    return LabelledFeatures(result.array, labels, [samples[i].path for i in result.kept])


def model_reference(model: str, pretrained: str | None) -> tuple[str, str | None]:
    """``--model``/``--pretrained`` as a run folder stores them: local files made absolute."""
    if model.startswith("local-dir:"):
        model = "local-dir:" + os.path.abspath(model[len("local-dir:"):])
    elif model.lower().endswith(".json") and Path(model).is_file():
        model = os.path.abspath(model)
    if pretrained not in (None, "none", "default") and Path(pretrained).is_file():
        pretrained = os.path.abspath(pretrained)
    return model, pretrained


def say(quiet: bool, message: str) -> None:
    if not quiet:
        info(message)
