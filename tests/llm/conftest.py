"""Fixtures for the LLM backends: a tiny random GPT-2 on disk, and an OpenAI-protocol server on loopback."""

from __future__ import annotations

import pytest
from support.fake_openai import FakeOpenAI, Scripted, echo_reply


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tlcli.llm.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llm(tiny_model_dir):
    from tlcli.llm import resolve_llm

    return resolve_llm(f"hf:{tiny_model_dir}")


@pytest.fixture
def fake_openai():
    with FakeOpenAI(echo_reply) as server:
        yield server


@pytest.fixture
def free_port():
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fake_openai_factory():
    """The server class, for tests that need their own reply function."""
    return FakeOpenAI
