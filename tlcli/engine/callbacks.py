"""Duck-typed callbacks (Lightning Fabric's style): any object with some of these methods.

on_run_start(info) · on_step_end(step, epoch, metrics, total_steps) · on_eval_end(step, epoch, metrics,
monitor, best, is_best) · on_layers(step, epoch, blocks, unfrozen) · on_checkpoint(step, epoch, path, kind)
· on_log(level, message) · on_run_end(result)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tlcli.runs.events import EventWriter


class EventLog:
    """Writes the run's events.jsonl (see tlcli.runs.events for the format) through its :class:`tlcli.runs.run.Run`
    (or, for callers that only have a folder, an EventWriter of its own). ``stage`` marks every event of
    one part of a multi-stage run."""

    def __init__(self, run, command: str, plugin: str, warnings: list[str] = (), stage: str | None = None):
        if hasattr(run, "emit"):
            self._emit, self._close = run.emit, (lambda: None)
        else:
            writer = EventWriter(Path(run) / "events.jsonl", run=Path(run).name)
            self._emit, self._close = writer.emit, writer.close
        self.command, self.plugin, self.stage = command, plugin, stage
        self.step, self.epoch = 0, 0
        self.warnings = list(warnings)  # from before the run (skipped files): logged right after run_start

    def emit(self, kind, data, step, epoch):
        self._emit(kind, data, step, epoch, stage=self.stage)

    def on_run_start(self, info):
        self.step = info.get("resumed_from") or 0
        self.emit("run_start", {"command": self.command, "plugin": self.plugin, **info}, self.step, 0)
        for message in self.warnings:
            self.on_log("warning", message)

    def on_step_end(self, step, epoch, metrics, total_steps):
        self.step, self.epoch = step, epoch
        self.emit("metric", metrics, step, round(metrics.get("epoch_progress", epoch), 4))

    def on_eval_end(self, step, epoch, metrics, monitor, best, is_best):
        self.emit("eval", {"metrics": metrics, "monitor": monitor, "best": best, "is_best": is_best}, step, epoch)

    def on_layers(self, step, epoch, blocks, unfrozen):
        self.emit("layers", {"blocks": blocks, "reason": "unfreeze", "unfrozen": unfrozen}, step, epoch)

    def on_checkpoint(self, step, epoch, path, kind):
        self.emit("checkpoint", {"path": path, "kind": kind}, step, epoch)

    def on_log(self, level, message):
        self.emit("log", {"level": level, "message": message}, self.step, self.epoch)

    def on_run_end(self, result):
        self.emit("run_end", result, result.get("steps", self.step), self.epoch)
        self._close()


_STEP_FIELDS = {"loss", "lr", "samples_per_s", "data_wait", "epoch_progress", "memory"}


class Progress:
    """Progress on stderr: a rich bar on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, quiet: bool = False, plain_every_s: float = 5.0):
        from tlcli.console.output import stderr_is_terminal

        self.quiet = quiet
        self.rich = stderr_is_terminal() and not quiet
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self._bar = None
        self._task = None

    def on_run_start(self, info):
        if self.quiet:
            return
        params = info["params"]
        line = (f"training {info.get('model', '')} on {info['device']} ({info['precision']}): "
                f"{params['trainable']:,} of {params['total']:,} parameters trainable, "
                f"{info['train_samples']} train / {info['val_samples']} val samples, {info['total_steps']} steps")
        self._print(line)
        if self.rich:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            from tlcli.console.output import stderr_console

            self._bar = RichProgress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                     console=stderr_console(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("train", total=info["total_steps"],
                                            completed=info.get("resumed_from") or 0, status="")

    def on_step_end(self, step, epoch, metrics, total_steps):
        status = f"epoch {epoch} loss {metrics['loss']:.4f} {metrics['samples_per_s']:.0f} samples/s"
        extra = [(k, v) for k, v in metrics.items() if k not in _STEP_FIELDS and isinstance(v, (int, float))]
        if extra:  # a task's own figures (Task.log_metrics: DPO's reward accuracy, margin...)
            status += "".join(f" {k} {v:.4g}" for k, v in extra[:4])
        if self._bar is not None:
            self._bar.update(self._task, completed=step, status=status)
        elif not self.quiet and (time.time() - self._last_plain > self.plain_every_s or step == total_steps):
            self._last_plain = time.time()
            self._print(f"step {step}/{total_steps} {status}")

    def on_eval_end(self, step, epoch, metrics, monitor, best, is_best):
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self._print(f"epoch {epoch}: {shown}{' (best)' if is_best else ''}")

    def on_layers(self, step, epoch, blocks, unfrozen):
        self._print(f"epoch {epoch}: unfroze {', '.join(unfrozen)}")

    def on_log(self, level, message):
        self._print(f"{level}: {message}" if level != "info" else message)

    def on_run_end(self, result):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _print(self, line: str) -> None:
        if self.quiet:
            return
        from tlcli.console.output import terminal_safe

        line = terminal_safe(line)
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)


def standard_callbacks(run, command: str, plugin: str, quiet: bool = False,
                       warnings: list[str] = (), stage: str | None = None) -> list:
    """The event log and the progress display every training command uses; ``warnings`` (files skipped
    before training) go into the log after run_start, so `tlcli monitor` shows them too. ``run`` is a
    :class:`tlcli.runs.run.Run` (or a run folder's path)."""
    return [EventLog(run, command, plugin, warnings, stage), Progress(quiet=quiet)]
