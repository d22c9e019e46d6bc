"""The run screen driven with Pilot against event logs: numbers, layer states, keys, growth, floods."""

from __future__ import annotations

import json
import os
import threading

import pytest

from support import tui_logs as logs
from support.tui import panel_text, screen_lines, wait_until, widget_text
from tlcli.runs.paths import STOP_REQUEST_FILE
from tlcli.tui.app import build_monitor_app
from tlcli.tui.watcher import RunUpdated
from tlcli.tui.widgets.layers import LayerPanel
from tlcli.tui.widgets.run_header import RunHeader
from tlcli.tui.widgets.run_log import RunLog
from tlcli.tui.widgets.stats import StatsPanel

pytestmark = pytest.mark.anyio


def status_is(app, status):
    return lambda: app.screen.run is not None and app.screen.run.status == status


async def test_finished_run_shows_its_numbers_and_layer_states(tmp_path):
    app = build_monitor_app(logs.write(tmp_path / "ft", logs.finished_run()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, status_is(app, "finished"))
        header = widget_text(app, app.screen.query_one(RunHeader))
        assert "finished" in header and "12m34s" in header and "step 300/300" in header
        assert "resnet18" in header and "cuda:0" in header
        stats = widget_text(app, app.screen.query_one(StatsPanel))
        assert "0.2821" in stats and "0.91 @300" in stats and "812 samples/s" in stats
        assert "12%" in stats and "head 1.0e-03" in stats
        layers = widget_text(app, app.screen.query_one(LayerPanel))
        assert "■ layer3" in layers and "■ layer4" in layers and "□ layer2" in layers
        assert "3/7 trainable" in layers
        log = panel_text(app, app.screen.query_one(RunLog))
        assert "run finished" in log
        assert any("val_accuracy 0.91 (best 0.91 @ 300)" in line for line in screen_lines(app))


async def test_crashed_run_is_interrupted_at_its_last_step(tmp_path):
    app = build_monitor_app(logs.write(tmp_path / "crashed", logs.crashed_run()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, status_is(app, "interrupted"))
        header = widget_text(app, app.screen.query_one(RunHeader))
        assert "interrupted" in header and "step 120/300" in header and "ETA" not in header


async def test_torn_last_line_is_skipped_until_complete(tmp_path):
    run = logs.write(tmp_path / "r", logs.run_start(pid=os.getpid()) + logs.metric(10))
    torn = logs.metric(20, loss=0.5)
    with open(run / "events.jsonl", "a") as handle:
        handle.write(torn[:30])
    app = build_monitor_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.step == 10)
        with open(run / "events.jsonl", "a") as handle:
            handle.write(torn[30:])
        await wait_until(pilot, lambda: app.screen.run.step == 20, what="the completed line")
        assert "0.5" in widget_text(app, app.screen.query_one(StatsPanel))


async def test_waits_for_a_log_that_does_not_exist_then_follows_it(tmp_path):
    run = tmp_path / "later"
    app = build_monitor_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, status_is(app, "waiting"))
        assert "waiting for" in widget_text(app, app.screen.query_one(RunHeader))
        logs.write(run, logs.run_start(pid=os.getpid()) + logs.metric(10))
        await wait_until(pilot, status_is(app, "running"))
        assert "□ layer4" in widget_text(app, app.screen.query_one(LayerPanel))
        with open(run / "events.jsonl", "a") as handle:
            handle.write(logs.metric(100) + logs.unfreeze(100, "layer4", ["layer4"]))
        await wait_until(pilot, lambda: app.screen.run.step == 100, what="step 100")
        layers = widget_text(app, app.screen.query_one(LayerPanel))
        assert "■ layer4" in layers and "2/7 trainable" in layers
        assert "unfroze layer4" in panel_text(app, app.screen.query_one(RunLog))
        with open(run / "events.jsonl", "a") as handle:
            handle.write(logs.line("run_end", {"status": "stopped", "best": None, "monitor": "val_accuracy",
                                               "wall_s": 61.0, "steps": 100, "error": None}, step=100))
        await wait_until(pilot, status_is(app, "stopped"))


async def test_a_flood_of_events_is_coalesced(tmp_path):
    run = logs.write(tmp_path / "flood", logs.run_start(pid=os.getpid(), total_steps=20_000))
    updates = []
    app = build_monitor_app(run)

    def count(message):
        if isinstance(message, RunUpdated):
            updates.append(message)

    def flood():
        with open(run / "events.jsonl", "a") as handle:
            for step in range(1, 20_001):
                handle.write(logs.metric(step, total_steps=20_000))
                if step % 500 == 0:
                    handle.flush()

    async with app.run_test(size=(80, 24), message_hook=count) as pilot:
        await wait_until(pilot, status_is(app, "running"))
        writer = threading.Thread(target=flood)
        writer.start()
        await wait_until(pilot, lambda: app.screen.run.step == 20_000, timeout=20, what="all 20000 steps")
        writer.join()
        assert "step 20000/20000" in widget_text(app, app.screen.query_one(RunHeader))
        assert len(updates) < 200  # a handful per second, not one per event
        assert len(app.screen.run.loss) <= 2000


async def test_s_writes_the_stop_request(tmp_path):
    run = logs.write(tmp_path / "live", logs.run_start(pid=os.getpid()) + logs.metric(10))
    app = build_monitor_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, status_is(app, "running"))
        await pilot.press("s")
        await pilot.pause()
        request = json.loads((run / STOP_REQUEST_FILE).read_text())
        assert request["by"] == "tlcli monitor"
        assert "stop requested" in panel_text(app, app.screen.query_one(RunLog))


async def test_s_on_a_finished_run_writes_nothing(tmp_path):
    run = logs.write(tmp_path / "ft", logs.finished_run())
    app = build_monitor_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, status_is(app, "finished"))
        await pilot.press("s")
        await pilot.pause()
        assert not (run / STOP_REQUEST_FILE).exists()


async def test_p_pauses_updates_and_resumes_with_the_latest(tmp_path):
    run = logs.write(tmp_path / "live", logs.run_start(pid=os.getpid()) + logs.metric(10))
    app = build_monitor_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.step == 10)
        await pilot.press("p")
        await pilot.pause()
        assert "PAUSED" in widget_text(app, app.screen.query_one(RunHeader))
        with open(run / "events.jsonl", "a") as handle:
            handle.write(logs.metric(50))
        await pilot.pause(0.6)  # three polls: the watcher has read it, the screen holds it back
        assert app.screen.run.step == 10
        assert "step 10/300" in widget_text(app, app.screen.query_one(RunHeader))
        await pilot.press("p")
        await wait_until(pilot, lambda: app.screen.run.step == 50)
        header = widget_text(app, app.screen.query_one(RunHeader))
        assert "PAUSED" not in header and "step 50/300" in header


async def test_help_and_metric_keys(tmp_path):
    app = build_monitor_app(logs.write(tmp_path / "ft", logs.finished_run()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, status_is(app, "finished"))
        await pilot.press("question_mark")
        await pilot.pause()
        assert any("ask the run to stop" in line for line in screen_lines(app))
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("m")  # val_accuracy -> val_loss
        await pilot.pause()
        assert any("val_loss 0.59" in line for line in screen_lines(app))


async def test_agent_messages_show_in_the_transcript_not_the_log(tmp_path):
    from tlcli.tui.widgets.transcript import TranscriptPanel

    text = logs.run_start(pid=os.getpid()) + logs.line(
        "message", {"agent": "solver", "role": "assistant", "content": "the answer is 42"}, step=3)
    app = build_monitor_app(logs.write(tmp_path / "agent", text))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, status_is(app, "running"))
        await wait_until(pilot, lambda: app.screen.has_class("-agents"))
        assert "solver the answer is 42" in widget_text(app, app.screen.query_one(TranscriptPanel))
        assert "the answer is 42" not in panel_text(app, app.screen.query_one(RunLog))


async def test_draws_wide(tmp_path):
    app = build_monitor_app(logs.write(tmp_path / "ft", logs.finished_run()))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, status_is(app, "finished"))
        assert app.screen.has_class("-wide")
        log = panel_text(app, app.screen.query_one(RunLog))
        assert "run finished: best val_accuracy 0.91 in 12m34s" in log
