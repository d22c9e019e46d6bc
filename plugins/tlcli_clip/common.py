"""What probe, coop and compare share: labelled data, the seeded split, k-shot sampling, features."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlcli.data.bad_files import BadFiles
from tlcli.data.sources import LabelledSample, load_labelled, stratified_split
from tlcli.errors import UsageError
from tlcli.output import info


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

    # As torch tensors (shared memory) for coop and compare; the probe stays in NumPy and, with every
    # feature cached, never imports torch.
    @property
    def features(self):
        import torch

        return torch.from_numpy(self.x)

    @property
    def labels(self):
        import torch

        return torch.from_numpy(self.y)


def labelled_features(clip, samples: list[LabelledSample], classes: list[str], bad: BadFiles, options: dict,
                      quiet: bool, stats: dict) -> LabelledFeatures:
    """Features of ``samples`` (bad files reported and dropped), counting cache hits into ``stats``."""
    from tlcli_clip.features import image_features

    result = image_features(clip, [s.path for s in samples], bad, batch_size=options.get("batch_size"),
                            workers=options.get("workers"), use_cache=options.get("use_cache", True))
    stats["cached"] = stats.get("cached", 0) + result.cached
    stats["computed"] = stats.get("computed", 0) + result.computed
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[samples[i].label] for i in result.kept], dtype=np.int64)
    return LabelledFeatures(result.array, labels, [samples[i].path for i in result.kept])


def say(quiet: bool, message: str) -> None:
    if not quiet:
        info(message)
