"""What probe, coop, compare and vprompt share: labelled data, the seeded split, k-shot sampling, features."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlcli.cli.report import Report, rounded
from tlcli.data.bad_files import BadFiles
from tlcli.data.labelled import class_names_of, k_shot
from tlcli.data.sources import LabelledSample, load_labelled, stratified_split
from tlcli.data.tables import columns_of, default_validation
from tlcli.console.errors import UsageError
from tlcli.runs.run import Run


def shots_used(samples: list[LabelledSample], shots: int | None) -> dict:
    """What ``--shots`` gave: the number asked, and the fewest and most images any class really got (a
    class with fewer images than asked uses all it has, and the summary says so)."""
    counts: dict[str, int] = defaultdict(int)
    for sample in samples:
        counts[sample.label] += 1
    short = sorted(label for label, n in counts.items() if shots is not None and n < shots)
    return {"asked": shots, "min_per_class": min(counts.values(), default=0),
            "max_per_class": max(counts.values(), default=0), "classes_short": short}


def report_short_shots(used: dict, report) -> None:
    if used["classes_short"]:
        names = ", ".join(used["classes_short"][:5]) + (", ..." if len(used["classes_short"]) > 5 else "")
        report.info(f"--shots {used['asked']}: {len(used['classes_short'])} class(es) have fewer training images "
             f"({names}); using {used['min_per_class']} to {used['max_per_class']} per class")


@dataclass
class Split:
    classes: list[str]
    train: list[LabelledSample]
    val: list[LabelledSample]


def split_data(data: str, val_split: float, seed: int, bad: BadFiles, val: str | None = None,
               columns=None) -> Split:
    """DATA's classes and its train/validation split: ``val`` (labelled data of the same classes) when given
    (or a dataset dictionary's own validation split), else a stratified ``val_split`` share of DATA (none at
    0), drawn by ``seed``. ``columns``: the table columns a user named."""
    samples = load_labelled(data, bad_files=bad, columns=columns)
    classes = class_names_of(samples)
    if len(classes) < 2:
        raise UsageError(f"{data}: found {len(classes)} class; at least two are needed")
    val = val or (default_validation(data) if val_split > 0 else None)
    if val is not None:
        held_out = load_labelled(val, bad_files=bad, columns=columns)
        unknown = sorted({s.label for s in held_out} - set(classes))
        if unknown:
            raise UsageError(f"--val {val}: classes not in DATA: {', '.join(unknown[:5])}; use the same class names")
        return Split(classes, samples, held_out)
    if val_split <= 0:
        return Split(classes, samples, [])
    train, held_out = stratified_split(samples, val_split, seed)
    return Split(classes, train, held_out)


def split_of(cfg, bad: BadFiles) -> Split:
    """The split a config asks for (``data``, ``val``, ``val_split``, ``seed``)."""
    return split_data(cfg.data, cfg.val_split, cfg.seed, bad, cfg.val, columns_of(cfg))


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
    ``cfg`` gives ``batch_size``, ``workers`` and ``cache``."""
    from tlcli.features.images import image_features

    result = image_features(clip, [s.path for s in samples], bad, batch_size=cfg.batch_size,
                            workers=cfg.workers, use_cache=cfg.cache, quiet=quiet)
    stats["cached"] = stats.get("cached", 0) + result.cached
    stats["computed"] = stats.get("computed", 0) + result.computed
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[samples[i].label] for i in result.kept], dtype=np.int64)
    return LabelledFeatures(result.array, labels, [samples[i].path for i in result.kept])


def train_and_val_features(clip, train_samples: list[LabelledSample], val_samples: list[LabelledSample],
                           classes: list[str], bad: BadFiles, cfg, quiet: bool, stats: dict,
                           need_two: bool = True) -> tuple[LabelledFeatures, LabelledFeatures]:
    """Features of the training and validation samples; unreadable files count against --max-bad, and
    (with ``need_two``) fewer than two readable training images is a usage error."""
    train = labelled_features(clip, train_samples, classes, bad, cfg, quiet, stats)
    val = labelled_features(clip, val_samples, classes, bad, cfg, quiet, stats)
    bad.check(len(train_samples) + len(val_samples), cfg.max_bad)
    if need_two and len(train.y) < 2:
        raise UsageError(f"{cfg.data}: fewer than two readable training images")
    return train, val


def model_reference(model: str, pretrained: str | None) -> tuple[str, str | None]:
    """``--model``/``--pretrained`` as a run folder stores them: local files made absolute."""
    if model.startswith("local-dir:"):
        model = "local-dir:" + os.path.abspath(model[len("local-dir:"):])
    elif model.lower().endswith(".json") and Path(model).is_file():
        model = os.path.abspath(model)
    if pretrained not in (None, "none", "default") and Path(pretrained).is_file():
        pretrained = os.path.abspath(pretrained)
    return model, pretrained


def sub_run(command: str, cfg, job, folder: Path) -> dict:
    """One training command run inside a compare run's folder, silently, finished as its own command would
    finish it: its summary (with ``run_dir``)."""
    with Run.create(command, folder, config=cfg.model_dump(mode="json"), plugin="clip") as run:
        summary = job(cfg, run, Report(command, quiet=True, silent=True))
        summary = rounded({"command": command, "run_dir": str(run.path), **summary})
        run.finish(summary.get("status") or "finished", summary)
    return summary
