"""`tlcli predict` and `tlcli evaluate` on any trained run folder."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
