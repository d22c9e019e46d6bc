"""The job of `tlcli pretrain`: data, pretext task, engine, summary."""

from __future__ import annotations

from tlcli.data.bad_files import BadFiles
from tlcli.engine.callbacks import standard_callbacks
from tlcli.engine.loop import fit
from tlcli.console.errors import UsageError
from tlcli.data.tables import columns_of
from tlcli_selfsup.config import PretrainConfig
from tlcli_selfsup.images import labelled_images, preprocessing_for, unlabelled_images
from tlcli_selfsup.pretrain_task import PretrainTask


def run_pretrain(cfg: PretrainConfig, run, report) -> dict:
    """Pretrain the backbone; the summary's ``best`` / ``metrics`` hold the kNN accuracy on --val."""
    bad = BadFiles()
    pre = preprocessing_for(cfg.model, cfg.pretrained, cfg.image_size)
    if cfg.task == "jigsaw" and pre["crop"] < 3 * 4:
        raise UsageError(f"--task jigsaw cuts a 3x3 grid: --image-size {pre['crop']} is too small; use 24 or more")
    report.info("decoding images")
    train = unlabelled_images(cfg.data, pre, bad, cfg.workers, columns_of(cfg))
    val = None
    if cfg.val:
        val, classes = labelled_images(cfg.val, None, pre, bad, cfg.workers, columns_of(cfg))
        if len(classes) < 2:
            raise UsageError(f"--val {cfg.val}: the kNN accuracy needs at least two classes")
    bad.check(len(train) + (len(val) if val else 0) + len(bad), cfg.max_bad)
    if len(train) < 2:
        raise UsageError("fewer than two readable training images")

    task = PretrainTask(cfg, train, val, pre, run=run)
    callbacks = standard_callbacks(run, "pretrain", "selfsup", report.progress_quiet,
                                   [f"skipped {e['path']}: {e['reason']}" for e in bad.summary()])
    result = fit(task, cfg, run, callbacks=callbacks, resume=run.resumed)
    summary = {
        **result.summary(), "task": cfg.task, "model": cfg.model, "feature_dim": task.feature_dim,
        "history": result.history, "train_images": len(train), "val_images": len(val) if val else 0,
        "bad_files": bad.summary(),
    }
    knn = "-" if result.best is None else f"{result.best:.4f}"
    report.table(f"pretrain {cfg.task} {result.status}", ["run", "best kNN acc", "wall", "images/s"],
                 [[str(run.path), knn, f"{result.wall_s:.1f}s", f"{result.samples_per_s:.1f}"]])
    return summary
