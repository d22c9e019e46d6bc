"""Curves drawn with plotext: training loss, a validation metric, and any overlay of named curves."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tlcli.tui.state import RunState, Series

CURVE_COLORS = ("cyan", "orange", "green", "magenta")
# plotext computes tick labels from the value range; past about 1e154 the range overflows to inf and it
# raises. A diverged loss is shown at this ceiling instead (its number stays exact in the stats panel).
DRAWABLE_LIMIT = 1e15


@dataclass(frozen=True)
class Curve:
    label: str
    steps: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, label: str, series: Series) -> "Curve":
        values = tuple(max(-DRAWABLE_LIMIT, min(DRAWABLE_LIMIT, v)) for v in series.values)
        return cls(label, tuple(series.steps), values)


class CurveChart(PlotextPlot):
    """A titled plot of curves over steps; redrawn only when its title or data change."""

    def __init__(self, title: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._title = title
        self._drawn: tuple | None = None

    def show(self, title: str, curves: list[Curve]) -> None:
        key = (title, tuple((c.label, len(c.steps), c.steps[-1:], c.values[-1:]) for c in curves))
        if key == self._drawn:
            return
        self._drawn = key
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        plt.xlabel("step")
        for color, curve in zip(CURVE_COLORS, curves):
            if curve.steps:
                label = curve.label if len(curves) > 1 else None
                plt.plot(list(curve.steps), list(curve.values), marker="braille", color=color, label=label)
        self.refresh()

    def render(self):
        try:
            return super().render()
        except Exception as error:  # a curve plotext cannot lay out must not take the dashboard down
            return Text(f"(this curve cannot be drawn: {type(error).__name__})", style="dim")

    def on_mount(self) -> None:
        super().on_mount()
        if self._drawn is None:
            self.show(self._title, [])


class LossChart(CurveChart):
    run: reactive[RunState | None] = reactive(None)

    def watch_run(self, run: RunState | None) -> None:
        if run is not None:
            last = f" {run.loss.last:.4g}" if run.loss.last is not None else ""
            self.show(f"train loss{last}", [Curve.of("loss", run.loss)])


class MetricChart(CurveChart):
    """One validation metric: the one the run monitors unless `metric` names another."""

    run: reactive[RunState | None] = reactive(None)
    metric: reactive[str | None] = reactive(None)

    def watch_run(self) -> None:
        self._redraw()

    def watch_metric(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        run = self.run
        if run is None:
            return
        name = self.metric if self.metric in run.val else run.val_metric
        if name is None:
            self.show("validation (no eval yet)", [])
            return
        series = run.val[name]
        title = f"{name} {series.last:.4g}" if series.last is not None else name
        if name == run.monitor and run.best is not None:
            best_at = f" @ {run.best_step}" if run.best_step is not None else ""
            title += f" (best {run.best:.4g}{best_at})"
        self.show(title, [Curve.of(name, series)])
