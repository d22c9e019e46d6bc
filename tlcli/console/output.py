"""Where output goes: data on stdout (JSON Lines with --json), people-facing text on stderr.

Rich is used when stderr is a terminal; plain lines otherwise (CI logs, nohup, pipes).
"""

from __future__ import annotations

import json
import math
import re
import os
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=False)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


# C0 controls but tab, DEL and the C1 range: ESC/OSC sequences (OSC 52 writes the clipboard), a carriage
# return that hides what came before, a newline that forges a second line. And the bidirectional controls
# (U+202E RIGHT-TO-LEFT OVERRIDE makes "cat\u202egpj.exe" print as "catexe.jpg"), the line and paragraph
# separators and the zero-width marks that can hide them.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def terminal_safe(text: str) -> str:
    """``text`` fit for a terminal line: control characters shown as escapes (``\\x1b``, ``\\n``) and secrets
    masked. Everything that writes names or messages for people goes through this."""
    from tlcli.console.secrets import safe_message

    text = safe_message(str(text))
    # Lone surrogates (a JSON "\udc80", a non-UTF-8 file name decoded with surrogateescape) cannot be
    # written to a UTF-8 terminal: shown as \udc80 rather than raising UnicodeEncodeError.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def info(message: str) -> None:
    """A line for people, on stderr (plain when not a terminal); control characters escaped.

    ``message`` may hold rich markup; where it does not parse (a file name like ``[/x]`` put in without
    ``rich.markup.escape``) it is shown as it is rather than raising."""
    text = _markup_or_verbatim(terminal_safe(message))
    if stderr_is_terminal():
        stderr_console().print(text)
    else:
        print(text.plain, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    info(f"[yellow]warning:[/yellow] {message}")


def _markup_or_verbatim(message: str):
    from rich.errors import MarkupError
    from rich.text import Text

    try:
        return Text.from_markup(message)
    except MarkupError:
        return Text(message)


def _strip_markup(message: str) -> str:
    return _markup_or_verbatim(message).plain


def _default(value: Any):
    # numpy / torch scalars and paths end up here.
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(record: Any) -> str:
    """One compact JSON line; NaN/inf become null so every line is valid JSON."""
    return json.dumps(_finite(record), default=_default, ensure_ascii=False)


def emit_json(record: Any) -> None:
    """Write one JSON line on stdout, flushed so pipelines see it at once."""
    line = to_json(record)
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except UnicodeEncodeError:
        sys.stdout.write(json.dumps(_finite(record), default=_default, ensure_ascii=True) + "\n")
        sys.stdout.flush()


def display_path(path: Any) -> str:
    """A path printable on any terminal, even when its bytes are not UTF-8 or hold control characters."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    return terminal_safe(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """Tabular data on stdout: a rich table on a terminal, aligned plain text otherwise
    (easy to grep and cut; use --json for anything more)."""
    # Every cell, header and the title is terminal-safe: names come from files and models.
    cells = [[_cell(c) for c in row] for row in rows]
    columns = [terminal_safe(str(c)) for c in columns]
    title = terminal_safe(title) if title else title
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # Text, not str: rich would read a name such as "[red]x" as markup (or raise on "[/x]").
        table = Table(title=Text(title) if title else None)
        for column in columns:
            table.add_column(Text(column))
        for row in cells:
            table.add_row(*(Text(c) for c in row), style=None)
        Console(highlight=False).print(table)
        return
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    if title:
        print(f"# {title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return display_path(value) if isinstance(value, (str, bytes, os.PathLike)) else terminal_safe(str(value))
