"""`tlcli monitor` against odd and hostile event logs: the parser and the state folding never raise, a
bad value is ignored rather than shown, and the runs table keeps reading past a huge line."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import tui_logs as logs

from tlcli.runs.events import parse_event_line
from tlcli.tui import tail as tail_module
from tlcli.tui.format import clock, duration
from tlcli.tui.runs import RunReader
from tlcli.tui.state import RunState, load_run
from tlcli.tui.tail import EventTail

ODD_VALUES = [float("inf"), float("-inf"), float("nan"), 1e30, -1, 0, 10**400, -(10**400), "12", "", None,
              True, [], {}, [[[]]], {"a": {"b": [1, None]}}, 1.5, "\x1b]52;c;ZXZpbA==\x07", 2**63]
FIELDS = {
    "run_start": ["pid", "total_steps", "epochs", "resumed_from", "params", "blocks", "command", "model",
                  "host", "device"],
    "metric": ["loss", "lr", "samples_per_s", "data_wait", "memory"],
    "eval": ["metrics", "best", "monitor", "is_best"],
    "layers": ["blocks", "unfrozen"],
    "checkpoint": ["kind", "path"],
    "log": ["level", "message"],
    "run_end": ["status", "best", "wall_s", "error", "monitor"],
    "message": ["content", "role", "agent"],
}


def fold(lines: list[str]) -> RunState:
    state = RunState(Path("hostile"))
    for line in lines:
        event = parse_event_line(line)
        if event is not None:
            state.apply(event)
    state.judge_status(now=logs.START + 10)
    return state


def render_everything(state: RunState) -> None:
    """What the widgets compute from a state (format helpers, derived numbers), without a screen."""
    from tlcli.tui.format import count, megabytes, number

    duration(state.elapsed(now=logs.START + 10))
    duration(state.eta(now=logs.START + 10))
    clock(state.started)
    count(state.params_total)
    number(state.loss.last)
    megabytes(state.memory.get("rss_mb"))
    for lr in state.lr.values():
        f"{lr:.1e}"
    if state.progress is not None:
        assert 0.0 <= state.progress <= 1.0
    if state.epochs:
        f"{state.epochs:g}"
    f"{state.epoch:.2f}"
    shown = [line.text for line in state.logs] + [line.level for line in state.logs] + list(state.val)
    shown += [state.name, state.command, state.plugin, state.model, state.device, state.precision]
    shown += [b.name for b in state.blocks] + list(state.lr)
    for text in shown:
        text.encode("utf-8")  # strict, as a UTF-8 terminal needs
        # Every control character but tab (a terminal shows it as spaces; tlcli.console.output keeps it too).
        assert not any((ord(c) < 32 and c != "\t") or 0x7f <= ord(c) <= 0x9f for c in text), repr(text)


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_an_odd_value_in_any_field_is_folded_without_error(value):
    lines = [logs.run_start(pid=os.getpid())]
    for kind, fields in FIELDS.items():
        lines += [logs.line(kind, {field: value}, step=5) for field in fields]
    lines.append(logs.metric(10))  # a good event after the odd ones is still taken
    state = fold(lines)
    assert state.unreadable_events == 0
    assert state.step == 10 and state.loss.last == pytest.approx(2.3 * math.exp(-10 / 90) + 0.2, abs=1e-3)
    render_everything(state)
    for line in state.logs:
        assert "\x1b" not in line.text and "\x07" not in line.text


def test_infinite_and_huge_envelope_numbers_are_ignored():
    # The example: Python's json writes Infinity; 1e30 is valid JSON.
    line = '{"time": 1e30, "run": "x", "kind": "metric", "step": Infinity, "epoch": -Infinity, "data": {"loss": 1}}'
    event = parse_event_line(line)
    assert event["step"] == 0 and event["epoch"] == 0.0 and event["time"] is None
    state = fold([line])
    assert state.loss.values == [1.0]


@pytest.mark.parametrize("pid", [-1, 0, 1e30, 10**40, "123", 1.5, True, None])
def test_a_pid_that_names_no_process_never_shows_running_for_ever(pid):
    state = RunState(Path("x"))
    state.apply(json.loads(logs.line("run_start", {"pid": pid, "host": socket.gethostname()})))
    assert state.judge_status(now=logs.START + 30) == "running?"  # judged by the age of the last event
    assert state.judge_status(now=logs.START + 3600) == "interrupted?"


def test_an_unknown_run_end_status_reads_as_ended():
    state = fold([logs.run_start(pid=os.getpid()),
                  logs.line("run_end", {"status": "running", "wall_s": float("inf")}, step=3)])
    assert state.status == "interrupted" and not state.is_live
    assert state.elapsed() is None or math.isfinite(state.elapsed())


def test_escape_sequences_and_newlines_in_messages_are_shown_escaped():
    osc52 = "\x1b]52;c;ZXZpbA==\x07"
    state = fold([logs.run_start(pid=os.getpid(), run="r\x1b[2J"),
                  logs.line("log", {"level": "warning", "message": f"bad {osc52}\nwarning: forged"}),
                  logs.line("message", {"role": "assistant\x1b[31m", "content": "key sk-abcdefghijkl0123"})])
    texts = [line.text for line in state.logs]
    assert "bad \\x1b]52;c;ZXZpbA==\\x07\\nwarning: forged" in texts
    assert all("\n" not in t and "\x1b" not in t for t in texts)
    # An agent's message goes to the transcript, escaped and masked the same way.
    (entry,) = state.transcript
    assert entry.role == "assistant\\x1b[31m" and entry.content.startswith("key ")
    assert "abcdefghijkl0123" not in entry.content


def test_lone_surrogates_and_deep_nesting_become_printable_text():
    deep = "[" * 900 + "]" * 900
    state = fold([logs.run_start(pid=os.getpid()),
                  '{"kind": "log", "data": {"level": "info", "message": "a\\udc80b"}}\n',
                  '{"kind": "log", "data": {"message": %s}}\n' % deep])
    texts = [line.text for line in state.logs]
    assert "a\\udc80b" in texts
    for text in texts:
        text.encode("utf-8")  # strict: what a UTF-8 terminal accepts
    assert state.unreadable_events == 0


def test_a_line_over_four_megabytes_does_not_stop_the_reader(tmp_path):
    run = tmp_path / "big"
    huge = logs.line("log", {"level": "info", "message": "x" * (5 * 1024 * 1024)}, step=1)
    logs.write(run, logs.run_start(pid=logs.DEAD_PID) + huge + logs.metric(10) + logs.metric(20))
    state = load_run(run)  # one read is 4 MB at most: the rest must still be read, in one call
    assert state.step == 20 and state.loss.steps == [10, 20]
    assert RunReader().read(run).step == 20


def test_read_events_skips_an_oversized_line_whole(tmp_path, monkeypatch):
    from tlcli.runs import events

    monkeypatch.setattr(events, "MAX_LINE_BYTES", 1000)
    forged = '{"kind": "run_end", "data": {"status": "finished"}}'
    path = logs.write(tmp_path / "r", logs.run_start() + "#" * 5000 + forged + "\n" + logs.metric(10)
                      + logs.metric(20)[:-5]) / "events.jsonl"  # the last line is torn
    assert [e["kind"] for e in events.read_events(path)] == ["run_start", "metric"]


def test_a_fragment_of_a_huge_line_never_passes_for_an_event(tmp_path, monkeypatch):
    monkeypatch.setattr(tail_module, "MAX_READ_BYTES", 1024)
    forged = '{"kind": "run_end", "data": {"status": "finished"}}'
    # Not JSON as a whole (so not an event), but its last 51 bytes are one.
    hostile = "#" * 3000 + forged + "\n"
    path = logs.write(tmp_path / "r", logs.run_start(pid=os.getpid()) + hostile + logs.metric(10)) / "events.jsonl"
    tail, kinds = EventTail(path), []
    for _ in range(20):
        kinds += [e["kind"] for e in tail.read_new().events]
    assert kinds == ["run_start", "metric"]


def test_an_events_file_that_is_a_folder_is_said_once(tmp_path):
    (tmp_path / "r" / "events.jsonl").mkdir(parents=True)
    (tmp_path / "r" / "config.json").write_text("{}")
    reader = RunReader()
    state = reader.read(tmp_path / "r")
    state = reader.read(tmp_path / "r")
    errors = [line.text for line in state.logs if line.level == "error"]
    assert len(errors) == 1 and "is a directory" in errors[0], errors


def test_thousands_of_metric_names_or_blocks_stay_bounded():
    from tlcli.tui.state import MAX_BLOCKS, MAX_METRICS

    state = fold([logs.line("eval", {"metrics": {f"m{i}": 0.5 for i in range(5000)}}, step=1),
                  logs.line("eval", {"metrics": {"m0": 0.7, "new": 0.1}}, step=2),
                  logs.line("layers", {"blocks": [{"name": f"b{i}", "params": 1} for i in range(20000)]})])
    assert len(state.val) == MAX_METRICS and state.val["m0"].values == [0.5, 0.7] and "new" not in state.val
    assert len(state.blocks) == MAX_BLOCKS


def test_absurd_durations_and_times_show_a_dash():
    assert duration(float("inf")) == duration(float("nan")) == duration(1e300) == "-"
    assert clock(1e300) == "-"
    assert duration(754) == "12m34s"


# ---- property tests: generated event lines --------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=20),  # controls and lone surrogates too
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
kinds = st.sampled_from(sorted(FIELDS) + ["index", "warning", "custom"]) | st.text(max_size=8)


@st.composite
def event_dicts(draw):
    kind = draw(kinds)
    data = draw(st.dictionaries(st.sampled_from(FIELDS.get(kind, ["message", "content"]) + ["x"]), json_values,
                                max_size=5) | json_values)
    record = {"kind": kind, "data": data}
    for key in ("time", "step", "epoch", "run", "stage"):
        if draw(st.booleans()):
            record[key] = draw(json_values)
    return record


@st.composite
def event_lines(draw):
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return json.dumps(draw(event_dicts()))  # allow_nan: Infinity and NaN as Python writes them
    if choice == 1:
        return json.dumps(draw(json_values))
    if choice == 2:
        return draw(st.binary(max_size=200))
    line = json.dumps(draw(event_dicts()))
    return line[: draw(st.integers(0, len(line)))]  # torn


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_lines(), max_size=12))
def test_generated_lines_never_raise_in_the_parser_or_the_folding(lines):
    state = RunState(Path("generated"))
    for line in lines:
        event = parse_event_line(line)
        assert event is None or (isinstance(event["data"], dict) and isinstance(event["step"], int))
        if event is not None:
            state.apply(event)
            state.apply(event)  # twice: a replayed line must fold as well
    state.judge_status(now=logs.START)
    render_everything(state.snapshot())
    assert state.unreadable_events == 0  # the typed folding handled it; the safety net was not needed


@settings(max_examples=60, deadline=None)
@given(st.lists(event_dicts(), max_size=8))
def test_generated_events_fold_even_without_the_parser(events):
    """RunState.apply gets raw dicts too (tests, plugins): the same tolerance without normalisation."""
    state = RunState(Path("raw"))
    for event in events:
        state.apply(event)
    state.judge_status(now=logs.START)
    render_everything(state)
    assert state.unreadable_events == 0


def test_a_run_folder_that_cannot_be_looked_into_is_not_a_run(tmp_path, monkeypatch):
    from tlcli.tui import runs

    logs.write(tmp_path / "ok", logs.finished_run())
    (tmp_path / "locked").mkdir()
    real_is_file = Path.is_file

    def is_file(self):
        if self.parent.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)  # root ignores chmod 000, so the EACCES is patched in
    assert [p.name for p in runs.find_runs(tmp_path)] == ["ok"]


@st.composite
def appended_log(draw):
    """Lines (events, junk, long ones) and the chunk sizes in which a writer appends their bytes."""
    lines = draw(st.lists(st.one_of(
        event_dicts().map(json.dumps),
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").decode("latin-1")),
        st.integers(60, 200).map(lambda n: json.dumps({"kind": "log", "data": {"message": "x" * n}})),
    ), max_size=10))
    blob = "".join(line + "\n" for line in lines).encode("utf-8")
    cuts = sorted(draw(st.lists(st.integers(0, len(blob)), max_size=8)))
    return lines, blob, cuts


@settings(max_examples=60, deadline=None)
@given(appended_log())
def test_the_tail_reads_each_short_enough_line_once_however_the_writes_are_cut(appended):
    """However a writer's bytes arrive (torn mid-line, several lines at once), the tail yields exactly the
    events of the complete lines that fit one read, each once, in order."""
    import tempfile

    lines, blob, cuts = appended
    limit = 128
    expected = [parse_event_line(line) for line in lines if len((line + "\n").encode()) <= limit]
    expected = [e for e in expected if e is not None]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.jsonl"
        path.write_bytes(b"")
        tail, got, done = EventTail(path), [], 0
        original = tail_module.MAX_READ_BYTES
        tail_module.MAX_READ_BYTES = limit
        try:
            for cut in cuts + [len(blob)]:
                with open(path, "ab") as handle:
                    handle.write(blob[done:cut])
                done = max(done, cut)
                for _ in range(10 * len(blob) + 10):  # poll until a read makes no progress
                    before = tail._offset
                    new = tail.read_new().events
                    got += new
                    if tail._offset == before and not new:
                        break
        finally:
            tail_module.MAX_READ_BYTES = original
    assert got == expected


def test_a_carriage_return_does_not_split_a_line(tmp_path):
    forged = '{"kind": "run_end", "data": {"status": "finished"}}'
    path = logs.write(tmp_path / "r", logs.run_start(pid=os.getpid()) + "junk\r" + forged + "\n"
                      + logs.metric(10)) / "events.jsonl"
    assert [e["kind"] for e in EventTail(path).read_new().events] == ["run_start", "metric"]
    from tlcli.runs.events import read_events

    assert [e["kind"] for e in read_events(path)] == ["run_start", "metric"]
