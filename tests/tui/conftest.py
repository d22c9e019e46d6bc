"""Fixtures for the dashboard tests; helpers are in tui_helpers.py, event logs in tui_logs.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

# `import tui_logs, tui_helpers` (tests run with --import-mode=importlib); names unique across the suite.
sys.path.insert(0, str(Path(__file__).parent))


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
