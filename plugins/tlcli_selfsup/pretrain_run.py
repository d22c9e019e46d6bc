"""One pretraining run: data, task, engine, summary."""

from __future__ import annotations

from tlcli.data.bad_files import BadFiles
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.errors import Interrupted, UsageError
from tlcli.output import emit_json, info, print_table
from tlcli_selfsup.config import PretrainConfig
from tlcli_selfsup.images import labelled_images, preprocessing_for, unlabelled_images
from tlcli_selfsup.pretrain_task import PretrainTask


def run_pretrain(cfg: PretrainConfig, run, resume: bool, json_output: bool, quiet: bool) -> dict:
    bad = BadFiles()
    pre = preprocessing_for(cfg.model, cfg.pretrained, cfg.image_size)
    if cfg.task == "jigsaw" and pre["crop"] < 3 * 4:
        raise UsageError(f"--task jigsaw cuts a 3x3 grid: --image-size {pre['crop']} is too small; use 24 or more")
    if not quiet:
        info("decoding images")
    train = unlabelled_images(cfg.data, pre, bad, cfg.workers)
    val = None
    if cfg.val:
        val, classes = labelled_images(cfg.val, None, pre, bad, cfg.workers)
        if len(classes) < 2:
            raise UsageError(f"--val {cfg.val}: the kNN accuracy needs at least two classes")
    bad.check(len(train) + (len(val) if val else 0) + len(bad), cfg.max_bad)
    if len(train) < 2:
        raise UsageError("fewer than two readable training images")

    task = PretrainTask(cfg, train, val, pre, run=run)
    callbacks = standard_callbacks(run, "pretrain", "selfsup", quiet,
                                   [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()])
    result = fit(task, cfg, run, callbacks=callbacks, resume=resume)
    summary = {
        "run_dir": str(run.path), "status": result.status, "task": cfg.task, "model": cfg.model,
        "best_knn_accuracy": result.best if val is not None else None,
        "final_metrics": result.final_metrics, "history": result.history, "steps": result.steps,
        "epochs": result.epochs_done, "wall_s": round(result.wall_s, 2),
        "images_per_s": round(result.samples_per_s, 1), "feature_dim": task.feature_dim,
        "train_images": len(train), "val_images": len(val) if val else 0, "bad_files": bad.summary(),
    }
    run.write_metrics(summary)
    if not run.writable:  # another rank of a torchrun job: rank 0 reports
        pass
    elif json_output:
        emit_json(summary)
    else:
        knn = "-" if summary["best_knn_accuracy"] is None else f"{summary['best_knn_accuracy']:.4f}"
        print_table(f"pretrain {cfg.task} {result.status}", ["run", "best kNN acc", "wall", "images/s"],
                    [[str(run.path), knn, f"{result.wall_s:.1f}s", f"{result.samples_per_s:.1f}"]])
    if result.status == "interrupted":
        raise Interrupted(f"interrupted; checkpoint saved. Continue with: tlcli pretrain --resume {run.path}")
    return summary
