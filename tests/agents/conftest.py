"""Fixtures for the agents tests; the fake backend and helpers are in agent_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


from agent_helpers import FakeChatLLM  # noqa: E402


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
