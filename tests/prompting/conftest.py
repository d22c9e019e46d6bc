"""Fixtures for `tlcli prompt`: question files, scripted replies, and the tiny local model."""

from __future__ import annotations

import json

import pytest

QUESTIONS = [
    {"id": "add", "question": "Tom has 3 apples and buys 2 more. How many apples does he have?", "answer": 5},
    {"id": "fruit", "question": "Which is a fruit?", "choices": ["car", "apple", "stone"], "answer": "B"},
    {"id": "half", "question": "What is 10 divided by 2?", "answer": "5"},
]


@pytest.fixture
def questions_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


@pytest.fixture
def exemplars_file(tmp_path):
    path = tmp_path / "exemplars.jsonl"
    path.write_text(json.dumps({"question": "There are 2 cars and 1 more arrives. How many cars?",
                                "rationale": "2 cars and 1 more makes 2 + 1 = 3.", "answer": 3}) + "\n")
    return path


@pytest.fixture
def replies_file(tmp_path):
    """Write a scripted backend's replies; returns the --llm spec."""

    def write(replies: list[str]) -> str:
        path = tmp_path / "replies.json"
        path.write_text(json.dumps(replies))
        return f"scripted:{path}"

    return write


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tlcli.llm.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-gpt2-prompting"))


def _five(prompt: str, n: int, body: dict) -> list[str]:
    return ["Two and three. The answer is 5." if "messages" in body else " The answer is 5."] * n


@pytest.fixture
def chat_server():
    """An OpenAI-compatible server on 127.0.0.1 that answers every request with n choices of
    "... The answer is 5." and records the requests (``server.requests``: path, headers, body)."""
    from support.fake_openai import FakeOpenAI

    with FakeOpenAI(_five) as server:
        yield server
