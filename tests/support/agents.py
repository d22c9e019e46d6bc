"""A fake chat backend with the shape of ``tlcli.llm`` chat results, and a solver built around it
(tests import this module by name)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcli_agents.models import LiveModel
from tlcli_agents.solver import Settings, Solver
from tlcli_agents.teams import load_team
from tlcli_agents.termination import MaxTokens, MaxTurns, TextMention, Timeout
from tlcli_agents.tools import build_toolbox


def make_solver(llm, team="plan-solve-critique", tools=(), max_turns=12, max_tokens=100_000, timeout=60.0,
                parallel=None):
    chosen = load_team(team)
    if parallel:
        chosen = chosen.model_copy(update={"parallel": parallel})
    rule = MaxTurns(max_turns) | MaxTokens(max_tokens) | Timeout(timeout)
    if chosen.stop:
        rule = TextMention(chosen.stop.mention, chosen.stop.by) | rule
    events = []
    solver = Solver(chosen, build_toolbox(list(tools)), LiveModel(llm, chosen.parallel), rule,
                    lambda kind, data, step: events.append(dict(data, step=step)), Settings(max_tokens=64))
    return solver, events


@dataclass
class FakeToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class FakeChoice:
    text: str
    tool_calls: list = field(default_factory=list)
    finish_reason: str = "stop"


@dataclass
class FakeUsage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class FakeResult:
    choices: list
    usage: FakeUsage


def choice(reply: Any, index: int) -> FakeChoice:
    if isinstance(reply, str):
        return FakeChoice(reply)
    calls = [FakeToolCall(c.get("id", f"call_{index}_{j}"), c["name"],
                          c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"]))
             for j, c in enumerate(reply.get("tool_calls", []))]
    return FakeChoice(reply.get("content", ""), calls, "tool_calls" if calls else "stop")


@dataclass
class FakeChatLLM:
    """Replies in turn (a string, {"content", "tool_calls"}, or a function of the messages); ``calls`` keeps
    every request. Usage: prompt = words in the messages, completion = words in the reply."""

    replies: list
    supports_tools: bool = False
    spec: str = "fake"
    latency: float = 0.0
    calls: list = field(default_factory=list)
    _next: int = 0

    def chat(self, messages, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None, tools=None):
        self.calls.append({"time": time.monotonic(), "messages": messages, "n": n, "temperature": temperature, "max_tokens": max_tokens,
                           "seed": seed, "tools": tools})
        if self.latency:
            time.sleep(self.latency)
        choices = []
        for _ in range(n):
            reply = self.replies[min(self._next, len(self.replies) - 1)] if self.replies else ""
            self._next += 1
            if callable(reply):
                reply = reply(messages)
            choices.append(choice(reply, self._next))
        prompt = sum(len(str(m.get("content") or "").split()) for m in messages)
        completion = sum(len(c.text.split()) + len(c.tool_calls) for c in choices)
        return FakeResult(choices, FakeUsage(prompt, completion))

    def close(self):
        pass


def last_json(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def events_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()]
