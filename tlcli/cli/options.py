"""Helpers every command shares for its options: which flags were given, and validation to one line."""

from __future__ import annotations

from typing import TypeVar

import typer

from tlcli.errors import UsageError

T = TypeVar("T")


def given_options(ctx: typer.Context) -> set[str]:
    """Names of the parameters the user gave on the command line (they override a --config file)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name != "DEFAULT":
            given.add(name)
    return given


def validated(config_class: type[T], **values) -> T:
    """``config_class(**values)``, with a pydantic error turned into one line naming the flag."""
    from pydantic import ValidationError

    try:
        return config_class(**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        raise UsageError(f"{where}: {first['msg']} (got {first.get('input')!r})") from None
