"""The MCP tool path against a real stdio MCP server started by the test."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from support.agents import make_solver
from tlcli.console.errors import UsageError
from tlcli_agents.tools import build_toolbox

SERVER = Path(__file__).parents[1] / "support" / "mcp_lookup_server.py"
COMMAND = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))}"


def test_mcp_tools_are_called_and_only_the_allow_listed_ones_exist(fake_llm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    llm = fake_llm(["plan", {"tool_calls": [{"id": "1", "name": "capital", "arguments": {"country": "Peru"}}]},
                    {"tool_calls": [{"id": "2", "name": "delete_everything", "arguments": {}}]},
                    "Lima", "APPROVE"], supports_tools=True)
    solver, events = make_solver(llm, tools=[f"mcp:{COMMAND}#capital"])
    try:
        outcome = solver.solve("Capital of Peru?")
    finally:
        solver.tools.close()
    tools = [e for e in events if e["role"] == "tool"]
    assert tools[0]["tool_name"] == "capital" and tools[0]["content"] == "Lima" and tools[0]["ok"]
    assert not tools[1]["ok"] and "does not exist" in tools[1]["content"]
    assert not (tmp_path / "DELETED").exists()
    assert [t["function"]["name"] for t in llm.calls[1]["tools"]] == ["capital"]
    assert llm.calls[1]["tools"][0]["function"]["parameters"]["properties"]["country"]["type"] == "string"
    assert outcome.answer == "Lima"


def test_mcp_without_an_allow_list_names_the_offered_tools():
    with pytest.raises(UsageError, match="offers capital, delete_everything"):
        build_toolbox([f"mcp:{COMMAND}"])


def test_mcp_server_that_does_not_start_is_a_usage_error_with_what_it_said(tmp_path):
    with pytest.raises(UsageError, match="did not start.*it said: .*missing.py"):
        build_toolbox([f"mcp:{sys.executable} {tmp_path / 'missing.py'}#x"])


def test_mcp_tools_work_when_stderr_has_no_file_descriptor(cli, tmp_path):
    """In-process CLI runs (and some IDEs) give sys.stderr no fileno; the server's stderr must not need it."""
    (tmp_path / "replies.json").write_text(json.dumps([
        "plan", {"tool_calls": [{"name": "capital", "arguments": {"country": "France"}}]}, "Paris", "APPROVE"]))
    result = cli("agents", "solve", "Capital of France?", "--llm", f"scripted:{tmp_path / 'replies.json'}",
                 "--tools", f"mcp:{COMMAND}#capital", "--out", "runs/m", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["answer"] == "Paris"


def test_the_server_gets_no_secrets(monkeypatch):
    from tlcli_agents.tools.mcp_tools import server_environment

    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-pass")
    monkeypatch.setenv("TLCLI_LLM_API_KEY", "secret")
    monkeypatch.setenv("TLCLI_HOME", "/tmp/home")
    env = server_environment()
    assert env["TLCLI_HOME"] == "/tmp/home" and "OPENAI_API_KEY" not in env and "TLCLI_LLM_API_KEY" not in env


def test_a_slow_mcp_tool_call_is_bounded_by_the_time_budget(fake_llm, tmp_path, monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    llm = fake_llm(["plan", {"tool_calls": [{"id": "1", "name": "slow", "arguments": {"seconds": 30}}]},
                    "never done"], supports_tools=True)
    solver, events = make_solver(llm, tools=[f"mcp:{COMMAND}#slow"], timeout=3, max_turns=1000)
    started = time.monotonic()
    try:
        outcome = solver.solve("Wait for it")
        elapsed = time.monotonic() - started
    finally:
        solver.tools.close()
    assert elapsed < 6, elapsed  # was 30 s: the tool call waited for its own 60 s bound
    assert outcome.status == "budget_exhausted" and "time budget" in outcome.reason
    tool = next(e for e in events if e["role"] == "tool")
    assert not tool["ok"] and "before the time budget ran out" in tool["content"]
