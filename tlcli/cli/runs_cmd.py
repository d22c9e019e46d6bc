"""`tlcli runs`: the run folders under runs/ (or any folder) -- list, show, compare, prune, export.

``tlcli runs`` and ``tlcli runs DIR`` are ``tlcli runs list``: the group's default command runs when the
word after ``runs`` names none of its commands, or when there is none. Everything is read from the run
folders' own files (``tlcli/runs/catalog.py``, ``tlcli/runs/scalars.py``); nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from tlcli.cli.command import Command
from tlcli.console.errors import UsageError
from tlcli.fields import Options, option
from tlcli.tui.format import duration

RUNS_ROOT = "runs"
Status = Literal["running", "finished", "stopped", "interrupted", "failed", "new"]
Removable = Literal["failed", "stopped", "interrupted"]


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


Statuses = Annotated[list[Status], BeforeValidator(_comma_list)]
RemovableStatuses = Annotated[list[Removable], BeforeValidator(_comma_list)]
Words = Annotated[list[str], BeforeValidator(_comma_list)]
SORT_KEYS = ("started", "name", "status", "best", "wall", "steps", "command")

LIST_HELP = """List the runs under runs/ (or DIR, searched recursively): command, status, best metric, steps, start, wall time, model.

`tlcli runs` and `tlcli runs DIR` run this command. With --json, one line a run ({"name", "path", "command",
"status", "best": {"metric", "value", "step"}, "steps", "started", "wall_s", "model"}), then the summary.
A run without a run_end is "running" while a process holds its lock, else "interrupted" (killed)."""

SHOW_HELP = """Show one run: what it is, its options, its summary, and its timeline (starts, evaluations, checkpoints, warnings, stops).

With --json, one line per timeline entry, then the summary holding the run's config and metrics.json."""

COMPARE_HELP = """Compare runs side by side: the options that differ, and their metrics.

Works across commands (a finetune beside a distill): an option a run does not have shows as "-". With
--json, one line a run (its differing options and its last evaluation), then the summary."""

PRUNE_HELP = """Remove failed, stopped or interrupted runs under runs/ (or DIR).

Lists what it would remove first, then asks (on a terminal) unless --yes; without a terminal and without
--yes it removes nothing. Only folders that tlcli made as runs are removed, each as a whole (a seed of a
--seeds run goes with its set, never alone); a run a process holds (running or being resumed) is skipped."""

EXPORT_HELP = """Write a run's metrics as TensorBoard event files or a CSV, from its events.jsonl.

The same files `--report-to tensorboard,csv` writes while a run trains (default: RUN/tensorboard/ and
RUN/metrics.csv), for a run that trained without it or into another folder. A plugin's sink (--format
wandb) gets the whole log replayed. An existing output is replaced only with --overwrite, and only when it
is one this command writes (event files; a metrics CSV)."""


class ListConfig(Options):
    folder: str = option(RUNS_ROOT, "Folder searched recursively for run folders.", argument=True, metavar="DIR")
    status: Statuses = option([], "Only runs with these statuses (comma-separated): running, finished, stopped, "
                              "interrupted, failed.")
    command: Words = option([], "Only runs of these commands (comma-separated): finetune, distill, ...")
    sort: Literal[SORT_KEYS] = option("started", "Order: started (newest first) | name | status | best (highest "
                                      "first) | wall | steps | command.")


class ShowConfig(Options):
    run: str = option(..., "A run folder.", argument=True, metavar="RUN", missing="pass a run folder")


class CompareConfig(Options):
    runs: list[str] = option(..., "Two or more run folders.", argument=True, metavar="RUNS",
                             missing="pass two or more run folders")
    all: bool = option(False, "List every option, not only those that differ.")


class PruneConfig(Options):
    folder: str = option(RUNS_ROOT, "Folder searched recursively for run folders.", argument=True, metavar="DIR")
    status: RemovableStatuses = option(..., "Remove runs with these statuses (comma-separated): failed, stopped, "
                                       "interrupted.", missing="say which runs to remove: --status failed (or "
                                       "stopped, interrupted)")
    older_than: str | None = option(None, "Only runs whose last event is older than this: 90m, 12h, 7d, 2w.")
    yes: bool = option(False, "Remove without asking.", short="-y")


class ExportConfig(Options):
    run: str = option(..., "A run folder.", argument=True, metavar="RUN", missing="pass a run folder")
    format: str = option(..., "tensorboard | csv | a plugin's metrics sink (wandb, mlflow).",
                         missing="pass --format tensorboard or --format csv")
    destination: str | None = option(None, "Where: the TensorBoard log folder, or the CSV file (or a folder for "
                                     "metrics.csv). Default: RUN/tensorboard/, RUN/metrics.csv.", flag="--out",
                                     short="-o")
    replace: bool = option(False, "Replace an existing output (only event files, or a metrics CSV, that tlcli "
                           "wrote).", flag="--overwrite")


# --- list ----------------------------------------------------------------------------------------------------

def _clock(when: float | None, with_date: bool = True) -> str:
    if when is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M:%S", time.localtime(when))


def _best_cell(best: dict | None) -> str:
    if not best or best.get("value") is None:
        return "-"
    return f"{best['metric']} {best['value']:.4g}"


def _sorted(infos: list, key: str) -> list:
    if key == "started":
        return sorted(infos, key=lambda i: i.started or 0.0, reverse=True)
    if key == "best":
        return sorted(infos, key=lambda i: (i.best is None or i.best.get("value") is None,
                                            -((i.best or {}).get("value") or 0.0), i.name))
    if key == "wall":
        return sorted(infos, key=lambda i: -(i.wall_s or 0.0))
    if key == "steps":
        return sorted(infos, key=lambda i: -(i.steps or 0))
    return sorted(infos, key=lambda i: (str(getattr(i, key) or ""), i.name))


def run_list(cfg: ListConfig, run, report) -> dict:
    from tlcli.runs.catalog import list_runs

    root = Path(cfg.folder)
    if not root.is_dir():
        if cfg.folder != RUNS_ROOT or root.exists():
            raise UsageError(f"{cfg.folder}: no such folder; pass a folder that holds run folders")
        report.info("no runs yet: runs/ does not exist here (training commands create it)")
        return {"status": "finished", "folder": cfg.folder, "runs": 0}
    infos = [i for i in list_runs(root) if (not cfg.status or i.status in cfg.status)
             and (not cfg.command or i.command in cfg.command)]
    infos = _sorted(infos, cfg.sort)
    for info in infos:
        report.record(info.record())
    if infos:
        report.table(None, ["name", "command", "status", "best", "steps", "started", "wall", "model"],
                     [[i.name, i.command or "-", i.status, _best_cell(i.best), i.steps if i.steps is not None else "-",
                       _clock(i.started), duration(i.wall_s), i.model or "-"] for i in infos])
    else:
        report.info(f"no runs under {cfg.folder}" + (" that match" if cfg.status or cfg.command else ""))
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.status] = counts.get(info.status, 0) + 1
    return {"status": "finished", "folder": cfg.folder, "runs": len(infos), "statuses": counts}


# --- show ----------------------------------------------------------------------------------------------------

def _compact(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _numbers(values: dict, limit: int = 6) -> str:
    shown = [f"{k} {v:.4g}" for k, v in values.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)][:limit]
    return ", ".join(shown)


def timeline(events) -> list[dict]:
    """What happened to a run, in order: starts and resumes, evaluations, unfreezing, checkpoints, log lines
    and ends (per stage for a multi-stage run). Metric lines are left out (the curves; see `tlcli plot`)."""
    entries = []
    for event in events:
        kind, data = event["kind"], event["data"]
        what = None
        if kind == "run_start":
            resumed = data.get("resumed_from")
            what = (f"resumed from step {resumed}" if isinstance(resumed, int) and not isinstance(resumed, bool)
                    else "started")
            details = [str(data[k]) for k in ("command", "model") if isinstance(data.get(k), str)]
            if isinstance(data.get("device"), str):
                details.append(f"on {data['device']}" + (f" ({data['precision']})"
                                                         if isinstance(data.get("precision"), str) else ""))
            if isinstance(data.get("total_steps"), int):
                details.append(f"{data['total_steps']} steps")
            what += (": " + " ".join(details)) if details else ""
        elif kind == "eval":
            metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
            what = "eval: " + _numbers(metrics) + (" (best)" if data.get("is_best") is True else "")
        elif kind == "layers":
            unfrozen = data.get("unfrozen") if isinstance(data.get("unfrozen"), list) else []
            what = "unfroze " + ", ".join(map(str, unfrozen[:10]))
        elif kind == "checkpoint":
            what = f"checkpoint ({data.get('kind') or '?'})"
        elif kind in ("log", "warning"):
            level = data.get("level") if kind == "log" else "warning"
            what = f"{level}: {data.get('message')}" if level != "info" else str(data.get("message"))
        elif kind == "run_end":
            what = str(data.get("status") or "ended")
            if isinstance(data.get("wall_s"), (int, float)):
                what += f" after {duration(data['wall_s'])}"
            if data.get("error"):
                what += f": {data['error']}"
        if what is None:
            continue
        entries.append({"time": event["time"], "stage": event["stage"], "step": event["step"],
                        "epoch": event["epoch"], "kind": kind, "what": _compact(what, 300)})
    return entries


def run_show(cfg: ShowConfig, run, report) -> dict:
    from tlcli.runs.catalog import iso_time, read_run, run_folder
    from tlcli.runs.events import read_events
    from tlcli.runs.paths import EVENTS_FILE

    path = run_folder(cfg.run)
    events = list(read_events(path / EVENTS_FILE))
    info = read_run(path, events=events)
    entries = timeline(events)
    for entry in entries:
        report.record({**entry, "time": iso_time(entry["time"])})
    report.table(f"run {info.name}", ["", ""], [
        ["path", str(path)], ["command", info.command or "-"], ["status", info.status
                                                                 + (f" ({info.holder})" if info.holder else "")],
        ["model", info.model or "-"], ["started", _clock(info.started)], ["wall", duration(info.wall_s)],
        ["steps", info.steps if info.steps is not None else "-"], ["best", _best_cell(info.best)]])
    if info.config:
        report.table("options (config.json)", ["option", "value"],
                     [[key, _compact(value)] for key, value in info.config.items()])
    scalar = {k: v for k, v in info.summary.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
              and k not in ("command", "run_dir")}
    scalar.update({k: v for k, v in info.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if scalar:
        report.table("summary (metrics.json)", ["", ""], [[k, v] for k, v in scalar.items()])
    if entries:
        start = entries[0]["time"]
        report.table("timeline", ["time", "stage", "step", "event"],
                     [[_clock(e["time"], with_date=False) if start is None or e["time"] is None
                       else f"+{duration(e['time'] - start)}", e["stage"] or "", e["step"], e["what"]] for e in entries])
    return {"status": "finished", "run_dir": str(path), "run": info.record(), "config": info.config,
            "summary": info.summary, "timeline": len(entries)}


# --- compare -------------------------------------------------------------------------------------------------

def _labels(paths: list[Path]) -> list[str]:
    from tlcli.console.output import display_path

    names = [p.resolve().name for p in paths]
    return [display_path(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def _same(values: list) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) == 1


def last_values(rows) -> dict[str, float]:
    """Each value name's last number in ``rows`` (a run's latest evaluation, last loss, ...)."""
    out: dict[str, float] = {}
    for row in rows:
        out.update(row.values)
    return out


def run_compare(cfg: CompareConfig, run, report) -> dict:
    from tlcli.runs.catalog import read_run, run_folder
    from tlcli.runs.events import read_events
    from tlcli.runs.paths import EVENTS_FILE
    from tlcli.runs.scalars import history

    if len(cfg.runs) < 2:
        raise UsageError("compare needs two or more run folders; `tlcli runs show RUN` shows one")
    paths = [run_folder(p) for p in cfg.runs]
    labels = _labels(paths)
    infos, evals = [], []
    for path, label in zip(paths, labels):
        events = list(read_events(path / EVENTS_FILE))
        infos.append(read_run(path, label, events))
        evals.append(last_values(history(e for e in events if e["kind"] == "eval").rows))
    keys = list(dict.fromkeys(k for info in infos for k in info.config))
    differing = [k for k in keys if not _same([info.config[k] if k in info.config else {"\0": "absent"}
                                               for info in infos])]
    shown_keys = keys if cfg.all else differing
    metric_names = list(dict.fromkeys(k for values in evals for k in values))
    for info, values in zip(infos, evals):
        report.record({"name": info.name, "path": str(info.path), "command": info.command, "status": info.status,
                       "best": info.best, "steps": info.steps, "wall_s": info.wall_s,
                       "train_samples_per_s": info.summary.get("train_samples_per_s"),
                       "config": {k: info.config.get(k) for k in differing if k in info.config},
                       "metrics": values})

    def cell(value: Any) -> str:
        return "-" if value is None else (f"{value:.4g}" if isinstance(value, float) else _compact(value, 40))

    def option_cell(config: dict, key: str) -> str:  # "-": the run has no such option; null: it is unset
        return "-" if key not in config else "null" if config[key] is None else cell(config[key])

    report.table("runs", ["", *labels], [
        ["command", *[i.command or "-" for i in infos]], ["status", *[i.status for i in infos]],
        ["best", *[_best_cell(i.best) for i in infos]],
        ["steps", *[cell(i.steps) for i in infos]], ["wall", *[duration(i.wall_s) for i in infos]],
        ["samples/s", *[cell(i.summary.get("train_samples_per_s")) for i in infos]],
        *[[f"last {name}", *[cell(values.get(name)) for values in evals]] for name in metric_names]])
    if shown_keys:
        report.table("options" + ("" if cfg.all else " that differ"), ["option", *labels],
                     [[k, *[option_cell(i.config, k) for i in infos]] for k in shown_keys])
    else:
        report.info("the runs' options are the same")
    return {"status": "finished", "runs": len(infos), "differences": differing}


# --- prune ---------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90m``, ``12h``, ``7d``, ``2w`` (or ``30s``) in seconds; a usage error names the forms."""
    found = _DURATION.fullmatch(text or "")
    if not found:
        raise UsageError(f"--older-than {text!r}: expected a number and a unit, e.g. 90m, 12h, 7d or 2w")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _inside_another(path: Path, runs: set[Path]) -> bool:
    return any(parent in runs for parent in path.resolve().parents)


def run_prune(cfg: PruneConfig, run, report) -> dict:
    import shutil

    from tlcli.console.output import display_path
    from tlcli.runs.catalog import find_runs, locked_for_removal, read_run, display_name
    from tlcli.runs.run import _not_a_run_of_ours

    older = parse_duration(cfg.older_than) if cfg.older_than is not None else None
    root = Path(cfg.folder)
    if not root.is_dir():
        raise UsageError(f"{cfg.folder}: no such folder; pass the folder that holds the runs")
    found = find_runs(root)
    all_runs = {p.resolve() for p in found}
    now = time.time()
    chosen, skipped = [], []
    for path in found:
        if _inside_another(path, all_runs):
            continue  # a seed of a --seeds run, a CoOp run of a compare: part of its parent
        info = read_run(path, display_name(path, root))
        if info.status not in cfg.status:
            continue
        last = info.last_time if info.last_time is not None else _mtime(path)
        if older is not None and (last is None or now - last < older):
            continue
        why_not = _not_a_run_of_ours(path) if path.resolve() != Path.cwd().resolve() else "the current folder"
        if why_not:
            skipped.append((info, f"not removed: {why_not}"))
            continue
        chosen.append((info, last))
    for info, reason in skipped:
        report.warn(f"{display_path(info.path)}: {reason}")
    for info, last in chosen:
        report.record({"name": info.name, "path": str(info.path), "status": info.status, "command": info.command,
                       "last_event": _iso(last), "action": "remove"})
    if not chosen:
        report.info(f"nothing to remove under {cfg.folder}")
        return {"status": "finished", "folder": cfg.folder, "removed": 0, "candidates": 0}
    report.table(f"{len(chosen)} run{'s' if len(chosen) != 1 else ''} to remove",
                 ["name", "command", "status", "last event"],
                 [[i.name, i.command or "-", i.status, _clock(last)] for i, last in chosen])
    if not cfg.yes:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            report.hint("nothing removed: pass --yes to remove " + ("it" if len(chosen) == 1 else f"these {len(chosen)}"))
            return {"status": "finished", "folder": cfg.folder, "removed": 0, "candidates": len(chosen)}
        import typer

        if not typer.confirm(f"Remove {len(chosen)} run folder{'s' if len(chosen) != 1 else ''}?", default=False,
                             err=True):
            report.hint("nothing removed")
            return {"status": "finished", "folder": cfg.folder, "removed": 0, "candidates": len(chosen)}
    removed, failed = [], []
    for info, _ in chosen:
        try:
            with locked_for_removal(info.path):
                if read_run(info.path).status != info.status:  # resumed meanwhile
                    raise BlockingIOError("resumed since it was listed")
                aside = info.path.with_name(f".{info.path.name}.pruned-{os.getpid()}")
                os.replace(info.path, aside)
            shutil.rmtree(aside, ignore_errors=True)
            removed.append(info)
        except BlockingIOError as busy:
            failed.append(info)
            report.warn(f"{display_path(info.path)}: not removed: in use by {busy}")
    report.info(f"removed {len(removed)} run folder{'s' if len(removed) != 1 else ''}")
    return {"status": "finished", "folder": cfg.folder, "removed": len(removed), "candidates": len(chosen),
            "removed_runs": [str(i.path) for i in removed], "in_use": [str(i.path) for i in failed]}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _iso(when: float | None) -> str | None:
    from tlcli.runs.catalog import iso_time

    return iso_time(when)


# --- export --------------------------------------------------------------------------------------------------

def _ours_csv(path: Path) -> bool:
    from tlcli.runs.sinks import CSV_HEAD

    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(",".join(CSV_HEAD))
    except OSError:
        return False


def _ours_tensorboard(path: Path, depth: int = 0) -> bool:
    """Only TensorBoard event files (and stage folders of them) inside."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    for entry in entries:
        if entry.is_symlink():
            return False
        if entry.is_dir():
            if depth > 0 or not _ours_tensorboard(Path(entry.path), depth + 1):
                return False
        elif not entry.name.startswith("events.out.tfevents."):
            return False
    return True


def run_export(cfg: ExportConfig, run, report) -> dict:
    import shutil

    from tlcli.console.output import display_path
    from tlcli.runs.catalog import lock_holder, run_folder
    from tlcli.runs.events import read_events
    from tlcli.runs.paths import EVENTS_FILE
    from tlcli.runs.sinks import (BUILT_IN, CSV_FILE, TENSORBOARD_DIR, CsvSink, TensorBoardSink, replay,
                                  sink_factory)
    from tlcli.runs.scalars import history

    path = run_folder(cfg.run)
    fmt = cfg.format
    factory = sink_factory(fmt, "--format") if fmt not in BUILT_IN else None  # an unknown name: one line naming the choices
    events = list(read_events(path / EVENTS_FILE))
    rows = history(events)
    if not rows.rows:
        raise UsageError(f"{display_path(path)}: no metric or eval events to export")
    if factory is not None:
        if cfg.destination is not None:
            raise UsageError(f"--out: the {fmt} sink decides where its metrics go; drop --out")
        count = replay(events, factory(path, _config_of(path)))
        report.info(f"replayed {count} rows of {display_path(path)} into {fmt}")
        return {"status": "finished", "run_dir": str(path), "format": fmt, "rows": count, "names": rows.names}

    if fmt == "csv":
        target = Path(cfg.destination) if cfg.destination else path / CSV_FILE
        if cfg.destination and target.is_dir():
            target = target / CSV_FILE
        elif target.suffix.lower() != ".csv":
            raise UsageError(f"--out {cfg.destination}: expected a .csv file name or an existing folder")
    else:
        target = Path(cfg.destination) if cfg.destination else path / TENSORBOARD_DIR
    if not target.parent.is_dir():
        raise UsageError(f"--out {display_path(target)}: folder {display_path(target.parent)} does not exist; "
                         "create it or pick another place")
    inside_run = target.resolve().parent == path.resolve()
    if inside_run and lock_holder(path) is not None:
        raise UsageError(f"{display_path(path)} is running (its --report-to may be writing there); export to "
                         "--out elsewhere, or wait for it to end")
    if target.exists() or target.is_symlink():
        ours = _ours_csv(target) if fmt == "csv" else target.is_dir() and _ours_tensorboard(target)
        if target.is_symlink() or not ours:
            raise UsageError(f"--out {display_path(target)}: exists and is not a metrics export of tlcli's; pick "
                             "another --out")
        if not cfg.replace:
            raise UsageError(f"--out {display_path(target)}: exists; pass --overwrite to replace it")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        (CsvSink if fmt == "csv" else TensorBoardSink)(tmp, events).close()
        count = len(rows.rows)
        if fmt == "csv":
            os.replace(tmp, target)
        else:
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    report.info(f"wrote {count} rows ({len(rows.names)} values) to {display_path(target)}")
    if fmt == "tensorboard":
        report.hint(f"view them with: tensorboard --logdir {display_path(target)}")
    return {"status": "finished", "run_dir": str(path), "format": fmt, "out": str(target), "rows": count,
            "names": rows.names}


def _config_of(path: Path) -> dict:
    from tlcli.runs.catalog import read_run

    return read_run(path).config


LIST = Command("list", ListConfig, run_list, LIST_HELP, kind="tool", group="runs",
               examples=("tlcli runs", "tlcli runs --status failed,stopped --sort best",
                         "tlcli runs --json | jq -r 'select(.best) | [.name, .best.value] | @tsv'"))
SHOW = Command("show", ShowConfig, run_show, SHOW_HELP, kind="tool", group="runs",
               examples=("tlcli runs show runs/finetune-20261123-101500",))
COMPARE = Command("compare", CompareConfig, run_compare, COMPARE_HELP, kind="tool", group="runs",
                  examples=("tlcli runs compare runs/a runs/b", "tlcli runs compare runs/a runs/b --all --json"))
PRUNE = Command("prune", PruneConfig, run_prune, PRUNE_HELP, kind="tool", group="runs",
                examples=("tlcli runs prune --status failed", "tlcli runs prune --status stopped,interrupted "
                          "--older-than 7d --yes"))
EXPORT = Command("export", ExportConfig, run_export, EXPORT_HELP, kind="tool", group="runs",
                 examples=("tlcli runs export runs/a --format tensorboard",
                           "tlcli runs export runs/a --format csv --out a.csv"))
