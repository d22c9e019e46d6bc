"""Teams against an OpenAI-compatible server on 127.0.0.1 speaking the real wire format: native tool calls
(JSON and streamed in fragments), usage from the server, and a debate's concurrent requests."""

from __future__ import annotations

import pytest

from support.agents import events_of, last_json
from support.agent_server import AgentServer, by_role

SCRIPT = {
    "planner": ["1. compute 17 * 23 2. add 4"],
    "solver": [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23 + 4"}}]},
               "The total is 395."],
    "critic": ["APPROVE"],
}


@pytest.mark.parametrize("options", ["", "stream=true"])
def test_native_tool_calls_over_the_wire(cli, options):
    with AgentServer(by_role(SCRIPT)) as server:
        result = cli("agents", "solve", "17 * 23 + 4?", "--llm", server.spec(options), "--tools", "calculator",
                     "--out", "runs/http", "--json")
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["outcome"] == "solved" and summary["answer"] == "The total is 395." and summary["turns"] == 4
    bodies = server.bodies
    assert "tools" not in bodies[0] or not bodies[0]["tools"]  # the planner may call nothing
    assert [t["function"]["name"] for t in bodies[1]["tools"]] == ["calculator"]
    assistant, tool = bodies[2]["messages"][-2:]
    call = assistant["tool_calls"][0]
    assert call["function"] == {"name": "calculator", "arguments": '{"expression": "17 * 23 + 4"}'}
    assert tool["role"] == "tool" and tool["tool_call_id"] == call["id"] and "395" in tool["content"]
    events = [e["data"] for e in events_of("runs/http") if e["kind"] == "message"]
    assert any(e["role"] == "tool" and e["content"] == "395" for e in events)
    if not options:  # the JSON answers carry the server's own counts (the words of each last message)
        prompt = sum(len(str(b["messages"][-1].get("content") or "").split()) for b in bodies)
        assert summary["tokens"]["prompt"] == prompt


def test_debate_sends_the_solvers_concurrently(cli):
    script = {"solver": ["395", "395", "394"], "judge": ["395"]}
    with AgentServer(by_role(script), latency=0.3) as server:
        result = cli("agents", "solve", "17 * 23 + 4?", "--llm", server.spec(), "--team", "debate",
                     "--out", "runs/debate", "--json")
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["answer"] == "395" and summary["turns"] == 2
    assert server.peak_in_flight == 3 and all(b.get("n", 1) == 1 for b in server.bodies)
    assert len(server.bodies) == 4  # three at once (peak 3 in flight), then the judge
    assert set(summary["per_agent"]) == {"solver-1", "solver-2", "solver-3", "judge"}
    judge = server.bodies[-1]["messages"][-1]["content"]
    assert "[solver-1]" in judge and "[solver-3]" in judge
    # The server is gone; the replay needs none, whatever order the concurrent answers arrived in.
    replay = cli("agents", "replay", "runs/debate", "--json")
    assert replay.exit_code == 0 and last_json(replay.stdout)["replay"] == "exact"


def test_budget_holds_against_a_server_that_never_stops(cli):
    forever = {"planner": ["plan"], "solver": [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}],
               "critic": ["no"]}
    with AgentServer(by_role(forever)) as server:
        result = cli("agents", "solve", "t", "--llm", server.spec(), "--tools", "calculator", "--max-turns", "5",
                     "--out", "runs/forever", "--json")
    summary = last_json(result.stdout)
    assert result.exit_code == 0 and summary["outcome"] == "budget_exhausted" and summary["turns"] == 5
    assert len(server.requests) == 5
