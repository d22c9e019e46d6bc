"""`tlcli agents teams | solve | replay` through the CLI, on a fake backend and the scripted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.agents import events_of, last_json
from tlcli.cli.report import summary_problems

SCRIPT = ["1. add", '{"tool": "calculator", "arguments": {"expression": "17 * 23 + 4"}}', "395",
          "Not shown as a sum.", '{"tool": "read_file", "arguments": {"path": "facts.txt"}}',
          "17 * 23 + 4 = 395 (facts.txt agrees: the number is 395)", "APPROVE"]


def test_teams_lists_and_shows(cli):
    result = cli("agents", "teams", "--json")
    assert result.exit_code == 0
    *rows, summary = result.json_lines()
    assert summary_problems(summary) == [] and summary["command"] == "agents teams" and summary["teams"] == 2
    names = {row["name"]: row for row in rows}
    assert set(names) == {"plan-solve-critique", "debate"}
    assert names["plan-solve-critique"]["stop"] == "critic says APPROVE"
    shown = cli("agents", "teams", "--show", "debate")
    assert shown.exit_code == 0 and 'name = "debate"' in shown.stdout and "n = 3" in shown.stdout
    assert cli("agents", "teams", "--show", "nope").exit_code == 2


def test_bad_team_file_is_one_line(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nstart = "a"\nanswer_from = "a"\n[[roles]]\nname = "a"\nsystem = "s"\nnext = "b"\n')
    result = cli("agents", "solve", "t", "--team", str(bad), "--llm", "scripted:x.json")
    assert result.exit_code == 2 and "a.next = 'b' is not a role" in result.stderr


def solve_with_files(cli, use_llm, fake_llm, tmp_path, out="runs/r1"):
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    (shared / "facts.txt").write_text("the number is 395")
    use_llm(fake_llm(list(SCRIPT)))
    return cli("agents", "solve", "What is 17 * 23 + 4?", "--llm", "fake:", "--tools", f"calculator,files:{shared}",
               "--out", out, "--json")


def test_solve_writes_a_transcript_and_a_summary(cli, use_llm, fake_llm, tmp_path):
    result = solve_with_files(cli, use_llm, fake_llm, tmp_path)
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert set(summary) >= {"status", "outcome", "answer", "turns", "tokens", "per_agent", "run_dir"}
    assert summary_problems(summary) == [] and summary["command"] == "agents solve"
    assert summary["status"] == "finished" and summary["outcome"] == "solved"
    assert summary["answer"].startswith("17 * 23 + 4 = 395")
    assert summary["turns"] == 7 and set(summary["tokens"]) == {"prompt", "completion"}
    assert summary["per_agent"]["solver"]["tool_calls"] == 2
    assert "budgets: 12 turns, 20000 tokens, 120 s" in result.stderr
    events = events_of(Path(summary["run_dir"]))
    messages = [e["data"] for e in events if e["kind"] == "message"]
    assert [m["role"] for m in messages].count("tool") == 2
    assert messages[0] == {"agent": "user", "role": "user", "content": "What is 17 * 23 + 4?"}
    assert events[0]["kind"] == "run_start" and events[-1]["kind"] == "run_end"
    assert json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())["outcome"] == "solved"


def test_task_from_stdin_and_plain_output(cli, use_llm, fake_llm):
    use_llm(fake_llm(["plan", "4", "APPROVE"]))
    result = cli("agents", "solve", "-", "--llm", "fake:", "--out", "runs/s", input="2 + 2?\n")
    assert result.exit_code == 0 and result.stdout == "4\n"
    assert "solved: critic said APPROVE; 3 turns" in result.stderr


def test_existing_run_folder_is_refused(cli, use_llm, fake_llm, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    use_llm(fake_llm(["x"]))
    result = cli("agents", "solve", "t", "--llm", "fake:", "--out", "taken")
    assert result.exit_code == 2 and (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_budget_exhausted_is_a_clean_exit(cli, use_llm, fake_llm):
    use_llm(fake_llm(["never done"]))
    result = cli("agents", "solve", "t", "--llm", "fake:", "--max-turns", "3", "--out", "runs/b", "--json")
    assert result.exit_code == 0
    summary = last_json(result.stdout)
    assert summary["outcome"] == "budget_exhausted" and summary["turns"] == 3 and summary["answer"] == "never done"
    assert summary["status"] == "finished" and summary_problems(summary) == []


def test_replay_is_exact(cli, use_llm, fake_llm, tmp_path):
    assert solve_with_files(cli, use_llm, fake_llm, tmp_path).exit_code == 0
    use_llm(fake_llm(["a backend must not be used by replay"]))
    result = cli("agents", "replay", "runs/r1", "--json")
    assert result.exit_code == 0, result.stderr
    replay = last_json(result.stdout)
    assert replay["replay"] == "exact" and replay["diverged_at"] is None and summary_problems(replay) == []
    assert replay["command"] == "agents replay" and replay["status"] == "finished"
    assert replay["outcome"] == "solved" and replay["answer"].startswith("17 * 23 + 4 = 395")
    recorded = json.loads(Path("runs/r1/metrics.json").read_text())
    assert replay["tokens"] == recorded["tokens"] and replay["per_agent"] == recorded["per_agent"]
    assert replay["steps"] == sum(1 for e in events_of(Path("runs/r1")) if e["kind"] == "message")


def test_replay_reports_a_changed_tool_at_the_first_differing_step(cli, use_llm, fake_llm, tmp_path):
    assert solve_with_files(cli, use_llm, fake_llm, tmp_path).exit_code == 0
    (tmp_path / "shared" / "facts.txt").write_text("the number is 396")
    assert cli("agents", "replay", "runs/r1", "--json").exit_code == 0  # the recorded results: nothing is run
    result = cli("agents", "replay", "runs/r1", "--tools", f"calculator,files:{tmp_path / 'shared'}", "--json")
    assert result.exit_code == 1
    where = last_json(result.stdout)["diverged_at"]
    assert where["index"] == 7 and "396" in where["replayed"] and "395" in where["recorded"]
    assert "replay diverges at message 7" in result.stderr


def test_replay_reports_a_changed_team(cli, use_llm, fake_llm, tmp_path):
    assert solve_with_files(cli, use_llm, fake_llm, tmp_path).exit_code == 0
    team = json.loads(Path("runs/r1/config.json").read_text())["team_data"]
    team["roles"][0]["next"] = "critic"  # planner -> critic: the solver's first turn disappears
    lines = [f'name = "changed"', f'start = "planner"', f'answer_from = "solver"',
             '[stop]', 'mention = "APPROVE"', 'by = "critic"']
    for role in team["roles"]:
        lines += ["[[roles]]", f'name = "{role["name"]}"', f"system = {json.dumps(role['system'])}",
                  f"tools = {json.dumps(role['tools'])}", f'next = "{role["next"]}"']
    (tmp_path / "changed.toml").write_text("\n".join(lines) + "\n")
    result = cli("agents", "replay", "runs/r1", "--team", str(tmp_path / "changed.toml"), "--json")
    assert result.exit_code == 1
    where = last_json(result.stdout)["diverged_at"]
    assert where["index"] == 2 and where["recorded"].startswith("solver") and where["replayed"].startswith("critic")


def test_replay_never_runs_a_command_named_by_the_run_folder(cli, use_llm, fake_llm, tmp_path):
    assert solve_with_files(cli, use_llm, fake_llm, tmp_path).exit_code == 0
    config = json.loads(Path("runs/r1/config.json").read_text())
    config["tools"] = [f"mcp:touch {tmp_path / 'PWNED'}#read_file", "mcp:touch PWNED#calculator"]
    Path("runs/r1/config.json").write_text(json.dumps(config))
    result = cli("agents", "replay", "runs/r1", "--json")
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
    assert result.exit_code == 0, result.stderr
    replay = last_json(result.stdout)
    assert replay["replay"] == "exact" and replay["answer"].startswith("17 * 23 + 4 = 395")


def test_replay_with_recorded_results_still_applies_a_changed_teams_allow_list(cli, use_llm, fake_llm, tmp_path):
    assert solve_with_files(cli, use_llm, fake_llm, tmp_path).exit_code == 0
    team = json.loads(Path("runs/r1/config.json").read_text())["team_data"]
    lines = [f"{key} = {json.dumps(team[key])}" for key in ("name", "start", "answer_from")]
    lines += ["[stop]", 'mention = "APPROVE"', 'by = "critic"']
    for role in team["roles"]:
        tools = [] if role["name"] == "solver" else role["tools"]
        lines += ["[[roles]]", f'name = "{role["name"]}"', f"system = {json.dumps(role['system'])}",
                  f"tools = {json.dumps(tools)}", f'next = "{role["next"]}"']
    (tmp_path / "no-tools.toml").write_text("\n".join(lines) + "\n")
    result = cli("agents", "replay", "runs/r1", "--team", str(tmp_path / "no-tools.toml"), "--json")
    assert result.exit_code == 1
    assert "not allowed for this role" in last_json(result.stdout)["diverged_at"]["replayed"]


def test_replay_of_a_folder_that_is_not_a_run(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("agents", "replay", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "not an agents run folder" in result.stderr


def test_a_backend_failure_mid_run_is_a_failed_run_with_a_summary(cli, use_llm, fake_llm):
    def broken(messages):
        raise ConnectionError("server went away")

    use_llm(fake_llm(["plan", broken]))
    result = cli("agents", "solve", "t", "--llm", "fake:", "--out", "runs/f", "--json")
    assert result.exit_code == 1 and "server went away" in result.stderr
    summary = last_json(result.stdout)
    assert summary["status"] == "failed" and summary["outcome"] == "failed"
    assert summary["turns"] == 1 and summary["answer"] is None and summary_problems(summary) == []
    end = events_of(Path("runs/f"))[-1]
    assert end["kind"] == "run_end" and end["data"]["status"] == "failed"


def test_tools_values_split_on_commas_and_mcp_keeps_its_list():
    from tlcli_agents.config import split_tools as _split_tools

    assert _split_tools(["calculator,files:docs", "mcp:python srv.py#search,fetch_chunk"]) == [
        "calculator", "files:docs", "mcp:python srv.py#search,fetch_chunk"]
    assert _split_tools(["calculator, mcp:srv#a,b"]) == ["calculator", "mcp:srv#a,b"]
    assert _split_tools(None) == [] and _split_tools([" , "]) == []


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents"


@pytest.mark.parametrize("native", ["true", "false"])
def test_scripted_backend_native_and_text_tool_calls_then_replay(cli, native):
    result = cli("agents", "solve", "What do 23 pens and the paper bag cost?", "--llm",
                 f"scripted:{EXAMPLE / 'replies.json'}?native_tools={native}", "--team", str(EXAMPLE / "team.toml"),
                 "--tools", f"calculator,files:{EXAMPLE / 'notes'}", "--out", "runs/s", "--json")
    assert result.exit_code == 0, result.stderr
    assert "scripted model answers: no language model is available offline" in result.stderr
    summary = last_json(result.stdout)
    assert summary["outcome"] == "solved" and summary["answer"].endswith("cost 395 cents.")
    tools = [e["data"] for e in events_of(Path("runs/s")) if e["kind"] == "message" and e["data"]["role"] == "tool"]
    assert [(t["tool_name"], t["ok"]) for t in tools] == [("read_file", True), ("calculator", True), ("calculator", True)]
    assert tools[-1]["content"] == "395" and "paper bag: 4 cents" in tools[0]["content"]
    config = json.loads(Path("runs/s/config.json").read_text())
    assert config["supports_tools"] is (native == "true")
    replay = cli("agents", "replay", "runs/s", "--json")
    assert replay.exit_code == 0 and last_json(replay.stdout)["replay"] == "exact"


def test_a_stop_request_ends_the_run_cleanly(cli, use_llm, fake_llm):
    def stop_after_planning(messages):
        Path("runs/stop/stop-request").write_text("{}")  # what tlcli monitor's s key writes
        return "the plan"

    use_llm(fake_llm([stop_after_planning, "never reached"]))
    result = cli("agents", "solve", "t", "--llm", "fake:", "--out", "runs/stop", "--json")
    summary = last_json(result.stdout)
    assert result.exit_code == 0 and summary["outcome"] == "budget_exhausted" and summary["turns"] == 1
    assert summary["status"] == "stopped" and "--resume" not in result.stderr  # agents runs are not resumed
    assert summary["reason"] == "stopped on request (stop-request)"
    assert events_of(Path("runs/stop"))[-1]["data"]["status"] == "stopped"


def test_tui_without_a_terminal_is_ignored(cli, use_llm, fake_llm):
    use_llm(fake_llm(["plan", "4", "APPROVE"]))
    result = cli("agents", "solve", "2+2", "--llm", "fake:", "--out", "runs/t", "--tui", "--json")
    assert result.exit_code == 0 and "--tui ignored: not a terminal" in result.stderr
    assert last_json(result.stdout)["answer"] == "4"


def test_costs_come_from_configured_prices_only(cli, use_llm, fake_llm, tmp_path):
    use_llm(fake_llm(["plan", "4", "APPROVE"]))
    plain = last_json(cli("agents", "solve", "2+2", "--llm", "fake:", "--out", "runs/c0", "--json").stdout)
    assert "cost" not in plain and "cost" not in plain["per_agent"]["solver"]
    Path("tlcli.toml").write_text("[agents.prices]\ncurrency = \"EUR\"\nprompt_per_million = 2.0\n"
                                  "completion_per_million = 10.0\n")
    use_llm(fake_llm(["plan", "4", "APPROVE"]))
    result = cli("agents", "solve", "2+2", "--llm", "fake:", "--out", "runs/c1", "--json")
    summary = last_json(result.stdout)
    tokens = summary["tokens"]
    assert summary["cost"] == {"currency": "EUR", "total": round((tokens["prompt"] * 2 + tokens["completion"] * 10) / 1e6, 6)}
    solver = summary["per_agent"]["solver"]
    assert solver["cost"] == round((solver["prompt_tokens"] * 2 + solver["completion_tokens"] * 10) / 1e6, 6)
    assert "EUR" in result.stderr
    Path("tlcli.toml").write_text("[agents.prices]\nprompt_per_million = -1\ncompletion_per_million = 1\n")
    bad = cli("agents", "solve", "2+2", "--llm", "fake:", "--out", "runs/c2")
    assert bad.exit_code == 2 and "[agents.prices]" in bad.stderr


def test_a_failed_run_replays_exactly_up_to_its_failure(cli, use_llm, fake_llm):
    def broken(messages):
        raise ConnectionError("server went away")

    use_llm(fake_llm(["plan", "It is 4.", broken]))
    assert cli("agents", "solve", "2+2", "--llm", "fake:", "--out", "runs/f").exit_code == 1
    replay = cli("agents", "replay", "runs/f", "--json")
    result = last_json(replay.stdout)
    assert replay.exit_code == 0 and result["replay"] == "exact"
    assert result["outcome"] == "failed" and result["answer"] == "It is 4." and result["turns"] == 2


def test_replay_of_an_edited_folder_with_a_broken_team_is_one_line(cli, use_llm, fake_llm, tmp_path):
    assert solve_with_files(cli, use_llm, fake_llm, tmp_path).exit_code == 0
    config = json.loads(Path("runs/r1/config.json").read_text())
    config["team_data"] = {"name": "x"}
    Path("runs/r1/config.json").write_text(json.dumps(config))
    result = cli("agents", "replay", "runs/r1")
    assert result.exit_code == 2 and "team_data is not a team" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
