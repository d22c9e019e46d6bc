"""One fine-tuning run: data, task, engine, summary. Called by the command (and by the TUI's worker)."""

from __future__ import annotations

from pathlib import Path

from tlcli.data.bad_files import BadFiles
from tlcli.data.labelled import training_classes
from tlcli.data.sources import load_labelled, stratified_split
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.errors import Interrupted, UsageError
from tlcli.models.vision import preprocessing_of
from tlcli.output import emit_json, info, print_table
from tlcli_finetune.config import FinetuneConfig
from tlcli_finetune.data import DecodedImages
from tlcli_finetune.task import FinetuneTask, preprocessing_for


def _split_data(cfg: FinetuneConfig, bad: BadFiles):
    samples = load_labelled(Path(cfg.data), bad_files=bad)
    if cfg.val:
        train, val = samples, load_labelled(Path(cfg.val), bad_files=bad)
    elif cfg.val_split > 0:
        train, val = stratified_split(samples, cfg.val_split, cfg.seed)
    else:
        train, val = samples, []
    return train, val, training_classes(train, val, cfg.data)


def run_finetune(cfg: FinetuneConfig, run, resume: bool, json_output: bool, quiet: bool,
                 outer_runs: tuple = ()) -> dict:
    """Decode the data, train with the engine, write ``metrics.json`` and print the summary. ``run`` is a
    :class:`tlcli.run.Run`; a usage error before training starts leaves its folder to be removed.
    ``outer_runs``: the folder of the --seeds set this run is one seed of (its stop request stops it too)."""
    bad = BadFiles()
    train_samples, val_samples, classes = _split_data(cfg, bad)
    skipped_in_walk = len(bad)  # files the folder walk could not use (dangling links...): count them too
    preprocessing = preprocessing_for(cfg, preprocessing_of(cfg.model, "none" if cfg.weights else cfg.pretrained))

    if not quiet:
        info(f"decoding {len(train_samples) + len(val_samples)} images")
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
    result = fit(task, cfg, run, callbacks=callbacks, resume=resume, outer_runs=outer_runs)

    summary = {
        "run_dir": str(run.path), "status": result.status, "best_val_accuracy": result.best,
        "final_metrics": result.final_metrics, "steps": result.steps, "epochs": result.epochs_done,
        "wall_s": round(result.wall_s, 2), "images_per_s": round(result.samples_per_s, 1),
        "trainable_params": result.trainable_params, "total_params": result.total_params,
        "device": result.device, "precision": result.precision, "classes": classes,
        "train_images": len(train), "val_images": len(val) if val else 0, "bad_files": bad.summary(),
    }
    run.finish(result.status, summary)
    if run.writable:
        if json_output:
            emit_json(summary)
        else:
            best = "-" if result.best is None else f"{result.best:.4f}"
            print_table(f"finetune {result.status}", ["run", "best val acc", "wall", "trainable / total", "images/s"],
                        [[str(run.path), best, f"{result.wall_s:.1f}s",
                          f"{result.trainable_params:,} / {result.total_params:,}", f"{result.samples_per_s:.1f}"]])
    if result.status == "interrupted":
        raise Interrupted(f"interrupted; checkpoint saved. Continue with: tlcli finetune --resume {run.path}")
    if result.status == "stopped" and not quiet:
        info(f"stopped; the best model so far is in {run.model_dir}. Continue with: tlcli finetune --resume {run.path}")
    return summary
