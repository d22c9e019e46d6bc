"""`tlcli layers MODEL`: a model's top-level blocks, the names --freeze-until accepts."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
