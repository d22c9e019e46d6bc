"""`tlcli plot`: one metric of one or more runs on one chart -- a PNG, SVG or PDF file (matplotlib), or a chart
in the terminal (plotext) when no file is named. The numbers are the runs' events, read as everything else
reads them (:mod:`tlcli.runs.scalars`), so the chart shows what `tlcli runs export` writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from tlcli.cli.command import Command
from tlcli.console.errors import UsageError
from tlcli.fields import Options, option

HELP = """Plot a metric of one or more runs: a PNG or SVG file, or a chart in the terminal.

Every run is a line (a stage of a multi-stage run, a line of its own) on one chart. --metric names what
the runs log: val_accuracy, val_loss, loss, lr/<group>, samples_per_s, ... (default: the metric the first
run monitors); a name no run has is refused with the names they do have. With -o FILE.png|svg|pdf the chart
is written there (atomically; an existing file is replaced only when it is a picture); without, it is drawn
in the terminal. With --json, one line per point ({"run", "stage", "metric", "step", "epoch", "value"})."""

FORMATS = (".png", ".svg", ".pdf")
# What a picture file starts with: an existing -o that is not one is never replaced.
_PICTURE_STARTS = (b"\x89PNG\r\n\x1a\n", b"<?xml", b"<svg", b"%PDF")
WIDTH_PX, HEIGHT_PX, DPI = 900, 540, 100
_TERMINAL_COLOURS = ("blue", "red", "green", "orange", "magenta", "cyan", "yellow", "gray")
_TERMINAL_MARKERS = ("o", "x", "+", "*", "#", "@", "%", "=")


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class PlotConfig(Options):
    runs: list[str] = option(..., "Run folders.", argument=True, metavar="RUNS", missing="pass one or more run folders")
    metric: Annotated[list[str], BeforeValidator(_comma_list)] = option(
        [], "What to plot (comma-separated for several): val_accuracy, val_loss, loss, lr/<group>, ... Default: "
        "the metric the first run monitors.", short="-m")
    x: Literal["step", "epoch"] = option("step", "The x axis: step | epoch.")
    output: str | None = option(None, "Write the chart to this .png, .svg or .pdf file (default: draw it in the "
                                "terminal).", flag="--out", short="-o")
    title: str | None = option(None, "The chart's title (default: the metric).")


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"-o {path}: expected a .png, .svg or .pdf file name")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: folder {path.parent} does not exist; create it or pick another path")
    if path.is_dir():
        raise UsageError(f"-o {path}: is a folder; name a file such as {path / 'curves.png'}")
    if path.exists() or path.is_symlink():
        try:
            with open(path, "rb") as handle:
                start = handle.read(16)
        except OSError:
            start = b""
        if path.is_symlink() or not start.lstrip().startswith(_PICTURE_STARTS):
            raise UsageError(f"-o {path}: exists and is not a picture; pick another file name")


def _series(paths: list[Path], labels: list[str], metrics: list[str], x: str):
    """``[(label, metric, stage, xs, ys)]`` and every value name the runs have."""
    from tlcli.runs.events import read_events
    from tlcli.runs.paths import EVENTS_FILE
    from tlcli.runs.scalars import history, series

    lines, names = [], []
    for path, label in zip(paths, labels):
        folded = history(read_events(path / EVENTS_FILE))
        names += [n for n in folded.names if n not in names]
        for metric in metrics:
            points = series(folded.rows, metric)
            stages = list(dict.fromkeys(stage for *_, stage in points))
            for stage in stages:
                chosen = [p for p in points if p[3] == stage]
                xs = [p[0] if x == "step" else p[1] for p in chosen]
                lines.append((label, metric, stage, xs, [p[2] for p in chosen]))
    return lines, names


def _default_metric(paths: list[Path]) -> str:
    from tlcli.runs.catalog import read_run

    for path in paths:
        best = read_run(path).best
        if best and isinstance(best.get("metric"), str) and " " not in best["metric"]:
            return best["metric"]
    return "loss"


def run_plot(cfg: PlotConfig, run, report) -> dict:
    from tlcli.cli.runs_cmd import _labels
    from tlcli.runs.catalog import run_folder

    paths = [run_folder(p) for p in cfg.runs]
    labels = _labels(paths)
    metrics = list(dict.fromkeys(cfg.metric)) or [_default_metric(paths)]
    output = Path(cfg.output) if cfg.output else None
    if output is not None:
        _check_output(output)
    lines, names = _series(paths, labels, metrics, cfg.x)
    missing = [m for m in metrics if not any(line[1] == m for line in lines)]
    if missing:
        have = ", ".join(names) if names else "none (no metric or eval events yet)"
        one = len(paths) == 1
        raise UsageError(f"--metric {missing[0]}: {'the run does not log it' if one else 'no run logs it'}; "
                         f"{'it logs' if one else 'they log'}: {have}")
    for label, path in zip(labels, paths):
        for metric in metrics:
            if not any(line[0] == label and line[1] == metric for line in lines):
                report.warn(f"{path}: has no {metric}; left out")
    for label, metric, stage, xs, ys in lines:
        for xv, yv in zip(xs, ys):
            report.record({"run": label, "stage": stage, "metric": metric, cfg.x: xv, "value": yv})
    title = cfg.title or ", ".join(metrics)
    named = [(_line_name(label, metric, stage, len(metrics) > 1), xs, ys) for label, metric, stage, xs, ys in lines]
    if output is not None:
        _write_picture(output, named, title, cfg.x, metrics)
        report.info(f"chart written to {output}")
    elif not report.json_output:
        _draw_in_terminal(report, named, title, cfg.x)
    summary = {"status": "finished", "runs": len(paths), "metric": metrics if len(metrics) > 1 else metrics[0],
               "lines": len(lines), "points": sum(len(xs) for _, xs, _ in named)}
    if output is not None:
        summary["out"] = str(output)
    return summary


def _line_name(label: str, metric: str, stage: str | None, several: bool) -> str:
    name = label + (f" {stage}" if stage else "")
    return f"{name}: {metric}" if several else name


def _write_picture(path: Path, lines, title: str, x: str, metrics: list[str]) -> None:
    """The chart with matplotlib's Agg canvas (no pyplot: no global state, no display needed), written to a
    temporary file beside ``path`` and renamed into place."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, xs, ys in lines:
        axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, linewidth=1.5, label=name)
    axes.set_xlabel(x)
    axes.set_ylabel(metrics[0] if len(metrics) == 1 else "value")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        figure.savefig(tmp, format=path.suffix.lower().lstrip("."), dpi=DPI)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _draw_in_terminal(report, lines, title: str, x: str) -> None:
    """plotext's chart of ``lines``: coloured on a colour terminal, told apart by markers elsewhere. Every
    name drawn is made terminal-safe first (a run folder's name may hold escape sequences)."""
    import shutil
    import sys

    import plotext

    from tlcli.console.output import terminal_safe

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    columns, rows = shutil.get_terminal_size((100, 30))
    plotext.clear_figure()
    plotext.theme("clear")
    for i, (name, xs, ys) in enumerate(lines):
        style = {"color": _TERMINAL_COLOURS[i % len(_TERMINAL_COLOURS)]} if colour else {
            "marker": _TERMINAL_MARKERS[i % len(_TERMINAL_MARKERS)]}
        plotext.plot(xs, ys, label=terminal_safe(name), **style)
    plotext.title(terminal_safe(title))
    plotext.xlabel(x)
    plotext.plotsize(max(40, min(columns, 120)), max(12, min(rows - 4, 30)))
    chart = plotext.build()
    plotext.clear_figure()
    report.drawing(chart if colour else plotext.uncolorize(chart))


PLOT = Command("plot", PlotConfig, run_plot, HELP, kind="tool",
               examples=("tlcli plot runs/a runs/b --metric val_accuracy -o curves.png",
                         "tlcli plot runs/a --metric loss,val_loss"))
