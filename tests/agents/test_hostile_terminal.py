"""Under a real terminal (`script`), agent messages, answers, tool results and team files reach the screen
with their terminal controls escaped: a model's OSC 52 (a clipboard write) or CSI (clear screen, colours) is
printed as ``\\x1b]52;...``, never run. With --json the same text is data, JSON-escaped."""

from __future__ import annotations

import json
import shutil

import pytest

from support.terminal import CSI, OSC52, assert_escaped, on_terminal

pytestmark = pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pseudo-terminal")


@pytest.fixture
def hostile_run(tmp_path):
    """A scripted team whose every reply, and a tool's file, carry escape sequences; solved into runs/h."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "facts.txt").write_text(f"the number is 4 {OSC52}{CSI}", encoding="utf-8")
    replies = [f"plan {OSC52}", {"content": "", "tool_calls": [{"name": "read_file", "arguments":
                                                                  {"path": "facts.txt"}}]},
               f"It is 4 {OSC52} and {CSI}red", f"APPROVE {CSI}"]
    (tmp_path / "replies.json").write_text(json.dumps(replies), encoding="utf-8")
    return tmp_path, ["--llm", f"scripted:{tmp_path / 'replies.json'}", "--tools", f"files:{tmp_path / 'notes'}"]


def test_solve_on_a_terminal_escapes_the_answer_the_transcript_and_tool_results(hostile_run):
    cwd, llm = hostile_run
    code, screen = on_terminal(["agents", "solve", "2+2?", *llm, "--out", "runs/h"], cwd)
    assert code == 0, screen
    assert_escaped(screen, "It is 4 \\x1b]52;c;ZXZpbA==\\x07 and \\x1b[2J\\x1b[38;5;196mred",  # the answer
                   "plan \\x1b]52;c;ZXZpbA==\\x07",  # the planner's message in the transcript
                   "the number is 4 \\x1b]52")  # the file a tool read
    # The run folder and --json keep the text as it was: data, JSON-escaped.
    messages = [json.loads(line)["data"] for line in (cwd / "runs/h/events.jsonl").read_text().splitlines()
                if json.loads(line)["kind"] == "message"]
    assert any(m["content"] == f"It is 4 {OSC52} and {CSI}red" for m in messages)
    code, screen = on_terminal(["agents", "replay", "runs/h"], cwd)
    assert code == 0, screen
    assert_escaped(screen, "It is 4 \\x1b]52;c;ZXZpbA==\\x07 and")


def test_solve_with_json_on_a_terminal_writes_the_answer_as_json(hostile_run):
    cwd, llm = hostile_run
    code, screen = on_terminal(["agents", "solve", "2+2?", *llm, "--out", "runs/j", "--json", "--quiet"], cwd)
    assert code == 0, screen
    assert_escaped(screen, '"answer": "It is 4 \\u001b]52;c;ZXZpbA==\\u0007 and \\u001b[2J')


def test_a_diverged_replay_names_the_messages_escaped(hostile_run):
    cwd, llm = hostile_run
    assert on_terminal(["agents", "solve", "2+2?", *llm, "--out", "runs/d"], cwd)[0] == 0
    (cwd / "notes" / "facts.txt").write_text(f"now {OSC52} changed", encoding="utf-8")
    code, screen = on_terminal(["agents", "replay", "runs/d", "--tools", f"files:{cwd / 'notes'}"], cwd)
    assert code == 1, screen
    assert_escaped(screen, "replay diverges at message", "now \\x1b]52")


def test_teams_show_of_a_team_file_with_controls(tmp_path):
    """TOML refuses raw controls (one escaped line, exit 2); written as TOML escapes they are shown as
    written, and --json holds the decoded text as JSON."""
    team = tmp_path / "team.toml"
    body = 'start = "a"\nanswer_from = "a"\n[[roles]]\nname = "a"\nsystem = "s"\nnext = "end"\n'
    team.write_text(f'name = "t"\ndescription = "evil {OSC52}{CSI}"\n' + body, encoding="utf-8")
    code, screen = on_terminal(["agents", "teams", "--show", team], tmp_path)
    assert code == 2 and len(screen.strip().splitlines()) == 1, screen
    assert_escaped(screen, "Illegal character")
    team.write_text('name = "t"\ndescription = "evil \\u001b]52;c;ZXZpbA==\\u0007"\n' + body, encoding="utf-8")
    code, screen = on_terminal(["agents", "teams", "--show", team], tmp_path)
    assert code == 0, screen
    assert_escaped(screen, 'description = "evil \\u001b]52;c;ZXZpbA==\\u0007"')
    code, screen = on_terminal(["agents", "teams", "--show", team, "--json"], tmp_path)
    assert code == 0, screen
    assert_escaped(screen, '"description": "evil \\u001b]52;c;ZXZpbA==\\u0007"')
