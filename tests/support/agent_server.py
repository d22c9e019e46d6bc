"""The fake OpenAI-compatible server (support/fake_openai.py) as the agents tests and benchmark use it:
``reply(body, n)`` sees the whole request (the speaker is in its system prompt), connections are kept
alive as real servers keep them, ``latency`` delays each answer, ``peak_in_flight`` counts concurrency."""

from __future__ import annotations

import threading
from typing import Callable

from .fake_openai import FakeOpenAI


class AgentServer(FakeOpenAI):
    http_version = "HTTP/1.1"

    def __init__(self, reply: Callable[[dict, int], list], latency: float = 0.0):
        super().__init__(lambda prompt, n, body: reply(body, n), latency)


def by_role(script: dict[str, list]) -> Callable[[dict, int], list]:
    """Replies chosen by the speaking role (found in the system prompt), each role's in turn: the same
    conversation whatever order concurrent requests arrive in."""
    used: dict[str, int] = {}
    lock = threading.Lock()

    def reply(body: dict, n: int) -> list:
        system = body["messages"][0]["content"]
        first_sentence = system.split(".")[0]
        role = next(name for name in script if f" {name}" in first_sentence)
        out = []
        with lock:
            for _ in range(n):
                index = used.get(role, 0)
                used[role] = index + 1
                replies = script[role]
                out.append(replies[min(index, len(replies) - 1)])
        return out

    return reply
