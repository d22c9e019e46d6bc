"""Short, stable text for numbers the dashboard shows."""

from __future__ import annotations

import math
import time

# Past a century a duration is an absurd value from a corrupt log, not something to spell out.
MAX_DURATION_S = 100 * 365 * 86400


def duration(seconds: float | None) -> str:
    """`42s`, `12m03s`, `3h05m`; `-` when unknown (or not a finite, plausible number of seconds)."""
    if seconds is None or not math.isfinite(seconds) or not -MAX_DURATION_S < seconds < MAX_DURATION_S:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def count(value: int | None) -> str:
    """Parameter counts: `812`, `11.2K`, `2.4M`, `1.3B`."""
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return str(value)


def number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def megabytes(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024:.1f}GB" if value >= 1024 else f"{value:.0f}MB"


def clock(timestamp: float | None) -> str:
    """Local date and minute a run started."""
    if timestamp is None:
        return "-"
    try:
        return time.strftime("%m-%d %H:%M", time.localtime(timestamp))
    except (OverflowError, OSError, ValueError):  # a time no clock can show
        return "-"
