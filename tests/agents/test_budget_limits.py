"""Budgets hold against a slow or lying server, and a team file naming a tool nothing provides is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support.agents import last_json
from support.agent_server import AgentServer

NEVER_DONE = {"content": "still thinking"}


def test_timeout_bounds_the_call_in_flight_and_its_retries(cli):
    with AgentServer(lambda body, n: ["still thinking"] * n, latency=30) as server:
        started = time.monotonic()
        result = cli("agents", "solve", "t", "--llm", server.spec(), "--timeout", "3", "--out", "runs/slow", "--json")
        elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["outcome"] == "budget_exhausted" and "time budget of 3 s" in summary["reason"], summary
    assert elapsed < 6, elapsed  # was 30.8 s (one call), 306 s against a 70 s server (its retries)
    assert len(server.requests) == 1


def test_timeout_bounds_retries_of_a_failing_server(cli):
    with AgentServer(lambda body, n: ["still thinking"] * n, latency=1.5) as server:
        server.failures = [server.Scripted(503)] * 50
        started = time.monotonic()
        result = cli("agents", "solve", "t", "--llm", server.spec("backoff=1&max_backoff=1"), "--timeout", "3",
                     "--out", "runs/retrying", "--json")
        elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    assert last_json(result.stdout)["outcome"] == "budget_exhausted" and elapsed < 5.5, elapsed


def test_negative_usage_from_a_server_is_clamped_with_a_warning(cli):
    def lying(handler, body):
        handler._json(200, {"id": "x", "object": "chat.completion", "usage": {"prompt_tokens": -1_000_000,
                            "completion_tokens": -5}, "choices": [{"index": 0, "finish_reason": "stop",
                                                                   "message": {"role": "assistant",
                                                                               "content": "still thinking"}}]})

    with AgentServer(lambda body, n: ["still thinking"] * n) as server:
        server.failures = [lying] * 100
        result = cli("agents", "solve", "t", "--llm", server.spec(), "--max-total-tokens", "200", "--max-turns", "60",
                     "--out", "runs/lying", "--json")
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert "usage.prompt_tokens = -1000000 (negative); counted as 0" in result.stderr
    assert result.stderr.count("usage.prompt_tokens") == 1  # said once
    assert summary["tokens"]["prompt"] >= 0 and summary["tokens"]["completion"] >= 0
    assert summary["outcome"] == "budget_exhausted" and "token budget" in summary["reason"], summary


def test_a_team_naming_an_unknown_tool_is_refused_in_one_line(cli, tmp_path):
    team = tmp_path / "team.toml"
    team.write_text('name = "t"\nstart = "a"\nanswer_from = "a"\n[[roles]]\nname = "a"\nsystem = "s"\n'
                    'tools = ["calculator", "shell"]\n')
    result = cli("agents", "solve", "t", "--team", str(team), "--llm", "scripted:x.json", "--tools", "calculator",
                 "--out", "runs/t")
    assert result.exit_code == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "'shell'" in message and "role a" in message and "Traceback" not in result.stderr
    assert not Path("runs/t").exists()
    # The built-in teams name tool kinds this run may not have (files, rag, mcp): still accepted.
    team.write_text('name = "t"\nstart = "a"\nanswer_from = "a"\n[[roles]]\nname = "a"\nsystem = "s"\n'
                    'tools = ["calculator", "files", "rag", "mcp", "read_file", "rag_search"]\n')
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["4"]))
    result = cli("agents", "solve", "t", "--team", str(team), "--llm", f"scripted:{script}", "--out", "runs/ok")
    assert result.exit_code == 0, result.stderr
