"""`tlcli monitor`: the live dashboard (filled in by the TUI work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
