"""A fake chat backend with the shape of ``tlcli.llm`` chat results, for driving teams without a model."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

sys.path.insert(0, str(Path(__file__).parent))


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
        self.calls.append({"messages": messages, "n": n, "temperature": temperature, "max_tokens": max_tokens,
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


@pytest.fixture
def fake_llm():
    return FakeChatLLM


@pytest.fixture
def use_llm(monkeypatch):
    """Make `--llm anything` resolve to the given fake backend in CLI tests."""

    def install(llm: FakeChatLLM) -> FakeChatLLM:
        import tlcli.llm

        monkeypatch.setattr(tlcli.llm, "resolve_llm", lambda spec=None: llm)
        return llm

    return install


def last_json(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def events_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()]
