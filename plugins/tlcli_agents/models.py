"""How the solver reaches a model: a live backend (``llm.chat``) or a recording (replay).

The solver hands over a round of requests (one per agent speaking now) and gets one reply per request.
A round of several agents with the same messages (a debate's solvers) is one batched call with ``n``
samples on a local backend, and concurrent requests in threads on an HTTP server, where ``n`` is often
ignored and each request mostly waits.
"""

from __future__ import annotations

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCallRequest:
    id: str
    name: str
    arguments: str  # JSON text as the model wrote it (may be malformed)


@dataclass
class Request:
    agent: str
    messages: list[dict]
    tools: list[dict] | None
    temperature: float
    max_tokens: int
    seed: int | None


@dataclass
class Reply:
    agent: str
    text: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def estimate_tokens(text: str) -> int:
    """A stand-in count when a backend reports no usage: about four characters a token."""
    return max(1, len(text) // 4) if text else 0


def _replies(agents: list[str], result: Any, messages: list[dict]) -> list[Reply]:
    """ChatResult -> one Reply per agent; a call's usage is split evenly between its samples."""
    choices = list(result.choices)
    usage = getattr(result, "usage", None)
    # A backend's counts are never negative here (a budget must not run backwards): the estimate instead.
    prompt = max(0, getattr(usage, "prompt_tokens", 0) or 0) or estimate_tokens(json.dumps(messages))
    completion = (max(0, getattr(usage, "completion_tokens", 0) or 0)
                  or sum(estimate_tokens(c.text or "") for c in choices))
    k = len(agents)
    replies = []
    for i, (agent, choice) in enumerate(zip(agents, choices)):
        calls = [ToolCallRequest(str(c.id or f"call_{i}_{j}"), str(c.name), c.arguments if isinstance(c.arguments, str)
                                 else json.dumps(c.arguments))
                 for j, c in enumerate(getattr(choice, "tool_calls", None) or [])]
        replies.append(Reply(agent, choice.text or "", calls, prompt // k + (prompt % k if i == 0 else 0),
                             completion // k + (completion % k if i == 0 else 0)))
    return replies


class LiveModel:
    def __init__(self, llm: Any, parallel: str = "auto"):
        self.llm = llm
        self.supports_tools = bool(getattr(llm, "supports_tools", False))
        is_http = str(getattr(llm, "spec", "")).startswith("openai:")
        self.threads = parallel == "threads" or (parallel == "auto" and is_http)

    def _chat(self, request: Request, n: int = 1):
        return self.llm.chat(request.messages, n=n, temperature=request.temperature, max_tokens=request.max_tokens,
                             seed=request.seed, tools=request.tools)

    def call(self, requests: list[Request]) -> list[Reply]:
        first = requests[0]
        if len(requests) == 1:
            return _replies([first.agent], self._chat(first), first.messages)
        same = all(r.messages == first.messages and r.tools == first.tools for r in requests)
        if same and not self.threads and first.temperature > 0:
            return _replies([r.agent for r in requests], self._chat(first, n=len(requests)), first.messages)
        if self.threads:
            with ThreadPoolExecutor(len(requests), thread_name_prefix="agent") as pool:
                # Each thread runs in a copy of this context: the caller's time limit holds there too.
                futures = [pool.submit(contextvars.copy_context().run, self._chat, r) for r in requests]
                results = [future.result() for future in futures]
        else:
            results = [self._chat(r) for r in requests]
        return [_replies([r.agent], res, r.messages)[0] for r, res in zip(requests, results)]

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if close:
            close()


def _count(value: Any) -> int:
    """A recorded token count: a non-negative int, anything else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12 else 0


class ReplayExhausted(Exception):
    """The run asks for a model reply the recording does not have: it has diverged."""


class ReplayModel:
    """Serves the recorded replies of each agent in their recorded order; no backend is used."""

    def __init__(self, events: list[dict], supports_tools: bool):
        self.supports_tools = supports_tools
        self.queues: dict[str, list[Reply]] = {}
        for event in events:
            data = event.get("data") or {}
            if event.get("kind") != "message" or data.get("role") != "assistant":
                continue
            usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            calls = [ToolCallRequest(str(c.get("id", "")), str(c.get("name", "")), c.get("arguments", ""))
                     for c in data.get("tool_calls") or [] if isinstance(c, dict)]
            agent = str(data.get("agent"))
            self.queues.setdefault(agent, []).append(
                Reply(agent, str(data.get("content") or ""), calls, _count(usage.get("prompt_tokens")),
                      _count(usage.get("completion_tokens"))))
        self.used = {agent: 0 for agent in self.queues}

    def call(self, requests: list[Request]) -> list[Reply]:
        replies = []
        for request in requests:
            queue = self.queues.get(request.agent, [])
            index = self.used.get(request.agent, 0)
            if index >= len(queue):
                raise ReplayExhausted(f"{request.agent} asks for model reply #{index + 1}, the recording has "
                                      f"{len(queue)} from {request.agent}")
            self.used[request.agent] = index + 1
            replies.append(queue[index])
        return replies

    def close(self) -> None:
        pass
