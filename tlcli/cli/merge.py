"""`tlcli merge RUN --out DIR`: a LoRA run's adapters folded into its base weights, as a new run folder.

The new run's ``model/`` holds the merged weights in the plain layout of that model kind (what the same run
without ``--lora`` would have exported), so ``tlcli predict``/``evaluate``/``export`` and ``--weights`` read
it like any run, with no base model to rebuild and no adapter layers at inference. The plugin that loads the
kind does the merging: its predictor module's ``merge_adapters(model_dir, out_dir)`` (see tlcli.plugin).
"""

from __future__ import annotations

from pathlib import Path

from tlcli.cli.command import Command
from tlcli.fields import Options, option

HELP = """Fold a LoRA run's adapters into its base weights: a new run folder with a plain model.

RUN_DIR is a run trained with --lora (finetune, coop, text finetune). The new run's model/ holds the merged
weights in the layout of a run trained without adapters, so predict, evaluate, export and --weights read it
like any run; its predictions equal the adapter run's. RUN_DIR is left as it is."""


class MergeConfig(Options):
    run_dir: str = option(..., "A run trained with --lora (or its model/ folder).", argument=True,
                          metavar="RUN_DIR", missing="pass a run folder trained with --lora")


def _hook(kind: str):
    """The ``merge_adapters`` function of the plugin that loads models of ``kind``, or a one-line refusal."""
    import importlib

    from tlcli.console.errors import UsageError
    from tlcli.registry import load_plugins

    target = load_plugins().predictor_for(kind)
    if target is None:
        raise UsageError(f"no installed plugin loads models of kind {kind!r}; see `tlcli plugins`")
    hook = getattr(importlib.import_module(target.partition(":")[0]), "merge_adapters", None)
    if hook is None:
        raise UsageError(f"the plugin that loads {kind!r} models cannot merge adapters (its predictor module "
                         "defines no merge_adapters)")
    return hook


def _source(run_dir: str):
    """The model folder to merge, checked: it has adapters and a plugin that merges its kind."""
    from tlcli.adapters.run_folder import lora_record
    from tlcli.console.errors import UsageError
    from tlcli.runs.artifacts import read_model

    files = read_model(Path(run_dir))
    if lora_record(files) is None:
        raise UsageError(f"{run_dir}: trained without adapters (no --lora), so there is nothing to merge; its "
                         "model/ is already plain")
    return files, _hook(files.kind)


def prepare_merge(cfg: MergeConfig, out):
    """Before the new run folder is made: the source must be a LoRA run, and not the folder written to."""
    from tlcli.console.errors import UsageError

    files, _ = _source(cfg.run_dir)
    if out is not None:
        source_run = files.path.parent if files.path.name == "model" else files.path
        if Path(out).resolve() == source_run.resolve():
            raise UsageError(f"--out {out}: that is the run being merged; pass a new folder")
    return out


def run_merge(cfg: MergeConfig, run, report) -> dict:
    import time

    started = time.time()
    files, hook = _source(cfg.run_dir)
    run.start({"source": str(files.path), "kind": files.kind})
    report.info(f"merging the adapters of {files.path} ({files.kind})")
    with run.model_writer() as folder:
        merged = hook(files.path, folder) or {}
    summary = {"status": "finished", "source": str(files.path), "kind": files.kind,
               "model_dir": str(run.model_dir), **merged, "wall_s": round(time.time() - started, 3)}
    report.table("merged", ["source", "kind", "adapted modules", "merged model"],
                 [[str(files.path), files.kind, str(merged.get("merged_modules", "-")), str(run.model_dir)]])
    return summary


MERGE = Command("merge", MergeConfig, run_merge, HELP, kind="train", resumable=False, prepare=prepare_merge,
                examples=("tlcli merge runs/finetune-20261123-101500 --out runs/finetune-merged",
                          "tlcli predict runs/finetune-merged photos/"))
