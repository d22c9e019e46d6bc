"""Fixtures for the dashboard tests; helpers are in support/tui.py, event logs in support/tui_logs.py."""

from __future__ import annotations

import time

import pytest


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch):
    """Times on screen (runs table) read the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def anyio_backend():
    """Async tests (marked `anyio`) run on asyncio, as Textual does."""
    return "asyncio"
