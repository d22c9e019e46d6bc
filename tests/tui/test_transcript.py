"""An agent run's transcript panel (message events), driven with Pilot, and its snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import tui_logs as logs
from support.tui import wait_until, widget_text
from tlcli.tui.app import build_monitor_app
from tlcli.tui.state import load_run
from tlcli.tui.widgets.run_header import RunHeader
from tlcli.tui.widgets.transcript import TranscriptPanel


def test_state_folds_messages_and_per_agent_usage(tmp_path):
    state = load_run(logs.write(tmp_path / "agents", logs.agent_run()))
    assert state.transcript_count == 8 and state.status == "finished"
    assert [e.agent for e in state.transcript if e.role == "assistant"] == [
        "planner", "solver", "solver", "critic", "solver", "critic"]
    solver = state.agents["solver"]
    assert (solver.turns, solver.prompt_tokens, solver.completion_tokens, solver.tool_calls) == (3, 710, 24, 1)
    assert state.transcript[2].tool_calls == ['calculator({"expression": "17*23"})']
    copy = state.snapshot()
    copy.agents["solver"].turns = 99
    assert state.agents["solver"].turns == 3  # the snapshot does not share the tallies


@pytest.mark.anyio
async def test_transcript_panel_shows_messages_and_usage(tmp_path):
    app = build_monitor_app(logs.write(tmp_path / "agents", logs.agent_run()))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.status == "finished")
        panel = app.screen.query_one(TranscriptPanel)
        assert app.screen.has_class("-agents") and panel.display
        assert not app.screen.query_one("#charts").display
        text = widget_text(app, panel)
        assert "transcript" in text and "task What is 17 * 23 + 4?" in text
        assert "solver 3t 734 tok 1 tools" in text and "total 1,430 tok" in text
        assert "→ calculator" in text and "↳ calculator: 391" in text
        assert "critic APPROVE" in text
        header = widget_text(app, app.screen.query_one(RunHeader))
        assert "turn 6  8 messages  3 agents" in header and "epoch" not in header


@pytest.mark.anyio
async def test_training_runs_show_no_transcript(tmp_path):
    app = build_monitor_app(logs.write(tmp_path / "ft", logs.finished_run()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run is not None and app.screen.run.status == "finished")
        assert not app.screen.query_one(TranscriptPanel).display
        assert app.screen.query_one("#charts").display


def test_transcript_snapshot(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logs.write(Path("runs/agents"), logs.agent_run())

    async def loaded(pilot):
        for _ in range(200):
            if pilot.app.screen.run is not None and pilot.app.screen.run.status == "finished":
                break
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(build_monitor_app(Path("runs/agents")), terminal_size=(100, 30), run_before=loaded)


def test_odd_message_events_fold_without_raising_and_stay_bounded():
    from tlcli.tui.state import MAX_AGENTS, RunState

    state = RunState(Path("x"))
    for data in [{"agent": 3, "role": None, "content": {"a": 1}, "tool_calls": 7, "usage": "many"},
                 {"agent": "a", "role": "assistant", "content": "line one\nline two\x1b[2J",
                  "tool_calls": [{"name": "calc\x07", "arguments": "{" * 5000}, "junk"],
                  "usage": {"prompt_tokens": -5, "completion_tokens": float("nan")}},
                 {"role": "tool", "tool_name": ["x"], "content": None}]:
        state.apply({"kind": "message", "step": 1, "data": data})
    for i in range(MAX_AGENTS + 10):
        state.apply({"kind": "message", "step": 2, "data": {"agent": f"agent-{i}", "role": "assistant",
                                                              "usage": {"prompt_tokens": 1, "completion_tokens": 1}}})
    entry = state.transcript[1]
    assert entry.content == "line one line two\\x1b[2J" and entry.tool_calls[0].startswith("calc\\x07({{")
    assert len(entry.tool_calls[0]) < 300 and state.agents["a"].prompt_tokens == 0
    assert len(state.agents) == MAX_AGENTS + 1 and state.agents["(others)"].turns == 10 + 2
