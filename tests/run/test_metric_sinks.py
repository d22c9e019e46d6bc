"""`--report-to csv,tensorboard` and plugin metric sinks: what is written live equals what the events say, read
back with TensorBoard's own reader and the csv module; a resumed run's steps trained again replace the old
ones everywhere; a plugin's sink gets exactly the events of events.jsonl."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tlcli.console.output import to_json
from tlcli.runs.events import parse_event_line, read_events
from tlcli.runs.scalars import history, series
from tlcli.runs.sinks import CsvSink, TensorBoardSink

TINY = ["--model", "timm:test_resnet", "--pretrained", "none", "--image-size", "24", "--batch-size", "6",
        "--workers", "0", "--precision", "fp32", "--device", "cpu", "--quiet"]


def _event(kind, data, step=0, epoch=0.0, stage=None, when=1_700_000_000.0):
    line = to_json({"time": when + step, "run": "r", "kind": kind, "step": step, "epoch": epoch, "stage": stage,
                    "data": data})
    return parse_event_line(line)


def _metric(step, loss, stage=None):
    return _event("metric", {"loss": loss, "lr": {"head": 0.1 / step, "backbone": 0.01 / step},
                             "samples_per_s": 100.0 + step, "data_wait": 0.1, "epoch_progress": step / 3,
                             "memory": {"rss_mb": 500.0}}, step, round(step / 3, 4), stage)


def _eval(step, accuracy, stage=None):
    return _event("eval", {"metrics": {"val_loss": 1 - accuracy, "val_accuracy": accuracy}, "monitor": "val_accuracy",
                           "best": accuracy, "is_best": True}, step, step // 3, stage)


def _killed_and_resumed_log() -> list[dict]:
    """Session 1 trains steps 1-5 (checkpoint at 3) and is killed; session 2 resumes from 3 and trains 4-6.
    A second stage (a pseudo-label round) has steps of its own, starting at 1 again."""
    first = [_event("run_start", {"command": "finetune", "resumed_from": None})]
    first += [_metric(s, 2.0 - s / 10) for s in range(1, 4)] + [_eval(3, 0.5)]
    first += [_event("checkpoint", {"kind": "last"}, 3), _metric(4, 9.0), _metric(5, 9.5)]  # trained again later
    second = [_event("log", {"level": "info", "message": "resumed"}, 3),
              _event("run_start", {"command": "finetune", "resumed_from": 3}, 3)]
    second += [_metric(s, 1.0 - s / 20) for s in range(4, 7)] + [_eval(6, 0.75)]
    staged = [_event("run_start", {"resumed_from": None}, 0, 0, "round-1"), _metric(1, 3.0, "round-1"),
              _eval(1, 0.25, "round-1")]
    end = [_event("run_end", {"status": "finished"}, 6, 2)]
    return first + second + staged + end


def _tensorboard(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def _expected(rows, stage=None) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard must hold: the history's values as float32 (TensorBoard's simple_value)."""
    chosen = [r for r in rows if r.stage == stage]
    names = list(dict.fromkeys(n for r in chosen for n in r.values))
    return {name: [(step, float(np.float32(value))) for step, _, value, _ in series(chosen, name)] for name in names}


def test_a_resume_drops_the_steps_trained_again():
    folded = history(_killed_and_resumed_log())
    main = [(r.step, r.values.get("loss")) for r in folded.rows if r.stage is None and "loss" in r.values]
    assert main == [(1, 1.9), (2, 1.8), (3, 1.7), (4, 0.8), (5, 0.75), (6, 0.7)]  # 9.0 and 9.5 are gone
    assert [(r.step, r.values["val_accuracy"]) for r in folded.rows if "val_accuracy" in r.values] == [
        (3, 0.5), (6, 0.75), (1, 0.25)]
    assert folded.names[:4] == ["loss", "lr/head", "lr/backbone", "samples_per_s"]
    assert "epoch_progress" not in folded.names and "memory/rss_mb" in folded.names


def test_csv_written_live_equals_csv_written_afterwards(tmp_path):
    events = _killed_and_resumed_log()
    live = CsvSink(tmp_path / "live.csv")
    for event in events:
        live.write(event)
    live.close()
    CsvSink(tmp_path / "after.csv", events).close()
    assert (tmp_path / "live.csv").read_bytes() == (tmp_path / "after.csv").read_bytes()

    with open(tmp_path / "live.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    rows = history(events).rows
    assert len(table) == len(rows)
    for line, row in zip(table, rows):
        assert int(line["step"]) == row.step and (line["stage"] or None) == row.stage
        assert float(line["time"]) == row.time and float(line["epoch"]) == row.epoch
        assert {k: float(v) for k, v in line.items() if k in row.values and v} == row.values  # exact: repr floats
        assert all(v == "" for k, v in line.items() if k not in row.values and k not in (
            "time", "stage", "step", "epoch"))


def test_tensorboard_holds_the_events_values_read_back_by_tensorboard(tmp_path):
    events = _killed_and_resumed_log()
    rows = history(events).rows
    sink = TensorBoardSink(tmp_path / "tb")
    for event in events:
        sink.write(event)
    sink.close()
    assert _tensorboard(tmp_path / "tb") == _expected(rows)
    assert _tensorboard(tmp_path / "tb" / "round-1") == _expected(rows, "round-1")  # a stage: a run of its own


def test_tensorboard_files_of_two_sessions_read_as_one_resumed_run(tmp_path):
    """A run killed after step 5 and resumed from its checkpoint at 3 by a new process: a second event file,
    whose restart marker makes TensorBoard drop the first file's steps 4 and 5."""
    events = _killed_and_resumed_log()
    cut = next(i for i, e in enumerate(events) if e["kind"] == "log")
    for session in (events[:cut], events[cut:]):
        sink = TensorBoardSink(tmp_path / "tb")
        for event in session:
            sink.write(event)
        sink.close()
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 2
    assert _tensorboard(tmp_path / "tb") == _expected(history(events).rows)


def test_a_run_writes_its_sinks_from_its_config_and_refuses_unknown_ones(tmp_path):
    from tlcli.console.errors import UsageError
    from tlcli.runs.run import Run

    with pytest.raises(UsageError, match=r"--report-to nope: not a metrics sink; choose from csv, tensorboard"):
        Run.create("finetune", tmp_path / "bad", config={"report_to": ["nope"]})
    assert not (tmp_path / "bad").exists()

    run = Run.create("finetune", tmp_path / "run", config={"report_to": ["csv", "tensorboard"]})
    for event in _killed_and_resumed_log():
        run.emit(event["kind"], event["data"], event["step"], event["epoch"], event["stage"])
    run.close()
    logged = list(read_events(tmp_path / "run" / "events.jsonl"))
    CsvSink(tmp_path / "from-log.csv", logged).close()
    assert (tmp_path / "run" / "metrics.csv").read_bytes() == (tmp_path / "from-log.csv").read_bytes()
    assert _tensorboard(tmp_path / "run" / "tensorboard") == _expected(history(logged).rows)


class _Broken:
    def __init__(self):
        self.calls = 0

    def write(self, event):
        self.calls += 1
        raise OSError(28, "No space left on device")

    def close(self):
        pass


def test_a_failing_sink_is_dropped_with_a_warning_and_the_run_goes_on(tmp_path, capsys):
    from tlcli.runs.run import Run

    run = Run.create("finetune", tmp_path / "run", config={})
    broken = _Broken()
    run._sinks = [("broken", broken)]
    run.emit("metric", {"loss": 1.0}, 1)
    run.emit("metric", {"loss": 0.5}, 2)
    run.finish("finished", {"status": "finished"})
    assert broken.calls == 1
    kinds = [(e["kind"], e["data"].get("message", "")) for e in read_events(tmp_path / "run" / "events.jsonl")]
    assert [k for k, _ in kinds] == ["metric", "log", "metric", "run_end"]
    assert "--report-to broken: stopped writing metrics" in kinds[1][1]
    assert "--report-to broken" in capsys.readouterr().err


# --- a plugin's sink, through a real (tiny) training run ---------------------------------------------------------

RECEIVED: list = []


class RecordingSink:
    """What a Weights & Biases or MLflow plugin would do, minus the upload."""

    def __init__(self, run_dir, config):
        self.run_dir, self.config = Path(run_dir), config
        RECEIVED.append(self)
        self.events, self.closed = [], 0

    def write(self, event):
        self.events.append(event)

    def close(self):
        self.closed += 1


def recording_sink(run_dir, config):
    return RecordingSink(run_dir, config)


@pytest.fixture
def fake_sink_plugin(monkeypatch):
    from tlcli import registry
    from tlcli.plugin import Plugin

    real = registry.load_plugins()
    plugin = Plugin("fake-tracker", metric_sinks={"fake": f"{__name__}:recording_sink"})
    plugins = registry.Plugins(real.loaded + [registry.LoadedPlugin(plugin, "test", "0")], real.failed)
    monkeypatch.setattr(registry, "load_plugins", lambda: plugins)
    RECEIVED.clear()
    yield
    RECEIVED.clear()


def test_a_plugins_sink_gets_every_event_of_a_training_run(cli, image_folder, tmp_path, fake_sink_plugin):
    result = cli("finetune", image_folder, *TINY, "--epochs", "2", "--report-to", "fake,csv", "--out", "run", "--json")
    assert result.exit_code == 0, result.stderr
    [sink] = RECEIVED
    assert sink.run_dir == Path("run") and sink.config["report_to"] == ["fake", "csv"]
    assert sink.closed == 1
    assert sink.events == list(read_events(Path("run") / "events.jsonl"))  # every event, as the log holds it
    assert [e["kind"] for e in sink.events][0] == "run_start" and sink.events[-1]["kind"] == "run_end"
    assert json.loads(Path("run/config.json").read_text())["report_to"] == ["fake", "csv"]
    assert Path("run/metrics.csv").is_file()


def test_an_unknown_report_to_is_exit_2_naming_the_choices(cli, image_folder, fake_sink_plugin):
    result = cli("finetune", image_folder, *TINY, "--report-to", "tensorboard,wandb", "--out", "run")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("tlcli: error: --report-to wandb: not a metrics sink; choose from csv, "
                                     "tensorboard, fake (a plugin may add others, such as wandb or mlflow)")
    assert not Path("run").exists()
