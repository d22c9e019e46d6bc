"""The job of `tlcli finetune`: data, task, engine, summary (one seed; ``--seeds`` in seeds.py)."""

from __future__ import annotations

from pathlib import Path

from tlcli.adapters.run_folder import lora_settings
from tlcli.data.bad_files import BadFiles
from tlcli.data.labelled import train_and_val, training_classes
from tlcli.data.tables import columns_of
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.console.errors import UsageError
from tlcli.models.vision import preprocessing_of
from tlcli_finetune.config import FinetuneConfig, check_image_size
from tlcli_finetune.data import DecodedImages
from tlcli_finetune.task import FinetuneTask, preprocessing_for


def run_finetune(cfg: FinetuneConfig, run, report) -> dict:
    """`tlcli finetune`: one training in ``run``, or with ``--seeds`` one per seed in ``run/seed-N``."""
    check_image_size(cfg)
    if cfg.seeds:
        from tlcli_finetune.seeds import run_seeds

        return run_seeds(cfg, run, report)
    summary = train_one(cfg, run, report)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    report.table(f"finetune {summary['status']}", ["run", "best val acc", "wall", "trainable / total", "images/s"],
                 [[str(run.path), fmt(summary["best"]["value"]), f"{summary['wall_s']:.1f}s",
                   f"{summary['trainable_params']:,} / {summary['total_params']:,}",
                   f"{summary['train_samples_per_s']:.1f}"]])
    return summary


def _split_data(cfg: FinetuneConfig, bad: BadFiles):
    train, val = train_and_val(cfg.data, cfg.val, cfg.val_split, cfg.seed, bad, columns_of(cfg))
    return train, val, training_classes(train, val, cfg.data)


def train_one(cfg: FinetuneConfig, run, report, outer_runs: tuple = ()) -> dict:
    """Decode the data and train with the engine in ``run`` (continuing its checkpoint when ``run.resumed``);
    returns the summary (the Report's schema). A usage error before training starts leaves the run's folder
    to be removed. ``outer_runs``: the folder of the --seeds set this run is one seed of (its stop request
    stops it too)."""
    bad = BadFiles()
    train_samples, val_samples, classes = _split_data(cfg, bad)
    skipped_in_walk = len(bad)  # files the folder walk could not use (dangling links...): count them too
    preprocessing = preprocessing_for(cfg, preprocessing_of(cfg.model, "none" if cfg.weights else cfg.pretrained))

    report.info(f"decoding {len(train_samples) + len(val_samples)} images")
    quiet = report.progress_quiet
    train = DecodedImages(train_samples, classes, preprocessing, bad, quiet=quiet)
    val = DecodedImages(val_samples, classes, preprocessing, bad, quiet=quiet) if val_samples else None
    bad.check(len(train_samples) + len(val_samples) + skipped_in_walk, cfg.max_bad)
    if len(train) < 2:
        raise UsageError(f"{cfg.data}: fewer than two readable training images")

    if cfg.domain_adapt:
        from tlcli_finetune.dann import DannTask, load_target

        task = DannTask(cfg, classes, train, val, preprocessing, run, load_target(cfg, preprocessing, bad))
    else:
        task = FinetuneTask(cfg, classes, train, val, preprocessing, run)
    callbacks = standard_callbacks(run, "finetune", "finetune", quiet,
                                   [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()])
    result = fit(task, cfg, run, callbacks=callbacks, resume=run.resumed, outer_runs=outer_runs)
    return {
        **result.summary(), "model": cfg.model, "trainable_params": result.trainable_params,
        "total_params": result.total_params, "classes": classes, "train_images": len(train),
        "val_images": len(val) if val else 0, "domain_adapt": cfg.domain_adapt,
        "dann_weight": cfg.dann_weight if cfg.domain_adapt else None, "bad_files": bad.summary(),
        "lora": lora_settings(cfg) if cfg.lora else None,
    }
