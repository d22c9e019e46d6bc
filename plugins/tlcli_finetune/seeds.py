"""`tlcli finetune --seeds 1,2,3`: one training per seed, each a run of its own in ``RUN_DIR/seed-N/``, and the
mean ± std of their best validation accuracy (adversarial training varies from seed to seed).

``--resume RUN_DIR`` reads back the seeds that finished (their metrics.json, not retrained), continues the
seed in progress from its last checkpoint and runs the rest, so the summary equals an uninterrupted run's.
Nothing heavy is imported here: the command parses ``--seeds`` with :func:`parse_seeds` at start-up.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

from tlcli.errors import UsageError


def parse_seeds(text) -> list[int]:
    """``"1,2,3"`` (the flag) or ``[1, 2, 3]`` (a config file) as distinct integers."""
    try:
        parts = text if isinstance(text, list) else [part for part in str(text).split(",") if part.strip()]
        seeds = [int(part) for part in parts]
    except (TypeError, ValueError):
        raise UsageError(f"--seeds {text!r}: expected integers separated by commas, e.g. 1,2,3") from None
    from tlcli.engine.task import MAX_SEED

    if any(not 0 <= seed <= MAX_SEED for seed in seeds):
        raise UsageError(f"--seeds {text!r}: each seed must be between 0 and {MAX_SEED}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: expected distinct integers separated by commas, e.g. 1,2,3")
    return seeds


def seed_folder(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed-{seed}"


def run_seeds(cfg, run, train_one: Callable, json_output: bool, resume: bool = False) -> dict:
    """Train ``train_one(seed_cfg, seed_run, resume)`` once per seed of ``cfg.seeds`` and write the summary
    to ``run``. A seed that does not finish (stop request, SIGTERM) ends the set: the rest wait for --resume."""
    from tlcli.output import emit_json, print_table

    run.start({"seeds": cfg.seeds, "resumed": resume})
    runs = []
    for seed in cfg.seeds:
        summary = _one_seed(cfg, seed, run, train_one, resume)
        runs.append({"seed": seed, "run_dir": summary["run_dir"], "status": summary["status"],
                     "best_val_accuracy": summary["best_val_accuracy"]})
        if summary["status"] != "finished":
            break
    values = [r["best_val_accuracy"] for r in runs if r["best_val_accuracy"] is not None]
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
    result = {"run_dir": str(run.path), "seeds": runs, "best_val_accuracy": {"mean": mean, "std": std},
              "domain_adapt": cfg.domain_adapt, "dann_weight": cfg.dann_weight}
    done = len(runs) == len(cfg.seeds) and all(r["status"] == "finished" for r in runs)
    status = "finished" if done else "stopped"
    run.finish(status, result)
    if not run.writable:
        return result
    if json_output:
        emit_json(result)
    else:
        shown = "-" if mean is None else f"{mean:.4f} ± {std:.4f}"
        print_table(f"finetune over {len(runs)} of {len(cfg.seeds)} seeds", ["seed", "run", "best val acc"],
                    [[r["seed"], r["run_dir"], "-" if r["best_val_accuracy"] is None else
                      f"{r['best_val_accuracy']:.4f}"] for r in runs] + [["mean ± std", str(run.path), shown]])
    return result


def _one_seed(cfg, seed: int, run, train_one: Callable, resume: bool) -> dict:
    """The summary of one seed's run: read back if it finished before, else trained (continued from its
    checkpoint when a resume finds one)."""
    from tlcli.engine.checkpoint import latest_checkpoint
    from tlcli.run import Run

    folder = seed_folder(run.path, seed)
    seed_cfg = cfg.model_copy(update={"seed": seed, "seeds": None})
    started = resume and folder.is_dir() and any(folder.iterdir())
    if started:
        before = Run.open(folder)
        if before.status == "finished" and before.metrics.get("status") == "finished":
            run.log("info", f"seed {seed}: finished before the resume; read back, not retrained")
            return before.metrics
        if latest_checkpoint(before.checkpoints_dir)[0] is not None:
            with Run.resume(folder, "finetune", "finetune") as seed_run:
                return train_one(seed_cfg, seed_run, True)
    # New, or killed before its first checkpoint: (re)start it. Only a run of ours is ever replaced.
    with Run.create("finetune", folder, overwrite=started, plugin="finetune",
                    config=seed_cfg.model_dump()) as seed_run:
        return train_one(seed_cfg, seed_run, False)
