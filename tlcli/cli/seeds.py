"""``--seeds 1,2,3`` for a training command: one training per seed, each a run of its own in ``RUN_DIR/seed-N/``,
and the mean and std of their best validation metric.

``--resume RUN_DIR`` reads back the seeds that finished (their metrics.json, not retrained), continues the
seed in progress from its last checkpoint and runs the rest, so the summary equals an uninterrupted run's.
(``finetune`` and ``text finetune`` use it.)
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

from tlcli.cli.report import rounded
from tlcli.runs.run import Run

# train_one(seed_cfg, seed_run, report, outer_runs=(run folder,)) -> the seed's summary (the Report's schema)
TrainOne = Callable[..., dict]


def seed_folder(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed-{seed}"


def run_seeds(cfg, run, report, *, command: str, plugin: str, train_one: TrainOne,
              extra: dict | None = None) -> dict:
    """Train once per seed of ``cfg.seeds``; the summary lists each seed's run (``seeds``) with the ``mean``
    and ``std`` of their best ``cfg.monitor`` beside. A seed that does not finish (stop request, SIGTERM)
    ends the set: the rest wait for --resume."""
    run.start({"seeds": cfg.seeds, "resumed": run.resumed})
    runs = []
    for seed in cfg.seeds:
        summary = _one_seed(cfg, seed, run, report, command, plugin, train_one)
        runs.append({"seed": seed, "run_dir": summary.get("run_dir"), "status": summary.get("status"),
                     "best": summary.get("best"), "metrics": summary.get("metrics") or {}})
        if summary.get("status") != "finished":
            break
    values = [r["best"]["value"] for r in runs if r["best"] and r["best"].get("value") is not None]
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
    done = len(runs) == len(cfg.seeds) and all(r["status"] == "finished" for r in runs)
    last = runs[-1]["status"] if runs else "stopped"
    status = "finished" if done else ("interrupted" if last == "interrupted" else "stopped")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    report.table(f"{command} over {len(runs)} of {len(cfg.seeds)} seeds", ["seed", "run", f"best {cfg.monitor}"],
                 [[r["seed"], r["run_dir"], fmt((r["best"] or {}).get("value"))] for r in runs]
                 + [["mean ± std", str(run.path), "-" if mean is None else f"{mean:.4f} ± {std:.4f}"]])
    return {"status": status, "metric": cfg.monitor, "seeds": runs, "mean": mean, "std": std, **(extra or {})}


def _one_seed(cfg, seed: int, run, report, command: str, plugin: str, train_one: TrainOne) -> dict:
    """The summary of one seed's run: read back if it finished before, else trained (continued from its
    checkpoint when a resume finds one)."""
    from tlcli.engine.checkpoint import latest_checkpoint

    folder = seed_folder(run.path, seed)
    seed_cfg = cfg.model_copy(update={"seed": seed, "seeds": None})
    started = run.resumed and folder.is_dir() and any(folder.iterdir())
    if started:
        before = Run.open(folder)
        if before.status == "finished" and before.metrics.get("status") == "finished":
            run.log("info", f"seed {seed}: finished before the resume; read back, not retrained")
            return before.metrics
        if latest_checkpoint(before.checkpoints_dir)[0] is not None:
            with Run.resume(folder, command, plugin) as seed_run:
                seed_run.report_to(seed_cfg.report_to, seed_cfg.model_dump(mode="json"))  # the set's, as resumed
                return _trained(seed_cfg, seed_run, report, run, command, train_one)
    # New, or killed before its first checkpoint: (re)start it. Only a run of ours is ever replaced.
    with Run.create(command, folder, overwrite=started, plugin=plugin,
                    config=seed_cfg.model_dump(mode="json")) as seed_run:
        return _trained(seed_cfg, seed_run, report, run, command, train_one)


def _trained(seed_cfg, seed_run, report, outer, command: str, train_one: TrainOne) -> dict:
    """One seed trained in ``seed_run``, finished with its summary (its metrics.json, as a plain run's)."""
    summary = train_one(seed_cfg, seed_run, report, outer_runs=(outer.path,))
    summary = rounded({"command": command, "status": summary["status"], "run_dir": str(seed_run.path), **summary})
    seed_run.finish(summary["status"], summary)
    return summary
