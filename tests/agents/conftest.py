"""Fixtures for the agents tests; the fake backend and helpers are in tests/support/agents.py."""

from __future__ import annotations

import pytest

from support.agents import FakeChatLLM


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
