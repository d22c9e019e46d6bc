"""Files a batch job had to skip: named on stderr as they happen, counted against ``--max-bad``."""

from __future__ import annotations

import math
from typing import Iterable, Iterator

from tlcli.data.common import BadImage, warn_verbatim
from tlcli.console.errors import UsageError
from tlcli.console.output import display_path

DEFAULT_MAX_BAD = 0.05


class BadFiles:
    """Collects the bad files of one job. Every ``add`` prints one line at once, so a user watching a long
    run sees the problem when it happens, not at the end."""

    def __init__(self) -> None:
        self._bad: list[BadImage] = []

    def add(self, bad: BadImage) -> None:
        """Record ``bad`` and print ``skipped PATH: REASON`` on stderr."""
        self._bad.append(bad)
        warn_verbatim(f"skipped {display_path(bad.path)}: {bad.reason}")

    def extend(self, bads: Iterable[BadImage]) -> None:
        for bad in bads:
            self.add(bad)

    def __len__(self) -> int:
        return len(self._bad)

    def __iter__(self) -> Iterator[BadImage]:
        return iter(self._bad)

    def check(self, total: int, max_bad: float) -> None:
        """Raise ``UsageError`` (exit 2) when more than ``max_bad`` of ``total`` files were bad.

        ``total`` counts every file the job tried, bad ones included. With no files at all, any bad
        file is too many.
        """
        allowed = math.floor(max_bad * total + 1e-9)  # 0.29 * 100 is 28.999...; allow 29
        count = len(self._bad)
        if count <= allowed:
            return
        if total:
            needed = min(100, math.ceil(count * 100 / total))
            detail = f" ({count / total:.1%})"
            hint = f", or raise the limit (--max-bad {needed}% lets this through)"
        else:
            detail, hint = "", ""
        raise UsageError(
            f"{count} of {total} files could not be read{detail}, more than --max-bad {_percent(max_bad)} "
            f"allows ({allowed}); fix or remove them (each was named above){hint}"
        )

    def summary(self) -> list[dict]:
        """``[{"path", "reason"}]`` for a JSON summary; paths printable (non-UTF-8 bytes escaped)."""
        return [{"path": display_path(bad.path), "reason": bad.reason} for bad in self._bad]


def parse_max_bad(text: str | float) -> float:
    """``"5%"`` -> 0.05, ``"0.05"`` -> 0.05; a fraction from 0 to 1. ``UsageError`` for anything else."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if 0.0 <= value <= 1.0:
        return value
    hint = f" (did you mean {raw}%?)" if not raw.endswith("%") and 1.0 < value <= 100.0 else ""
    raise UsageError(
        f"--max-bad {raw!r}: expected a percentage like 5% or a fraction like 0.05, from 0 to 1{hint}"
    )


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"
