"""Reading what the dashboard drew, and waiting for it, in Pilot tests."""

from __future__ import annotations

import time


def screen_lines(app) -> list[str]:
    """The text of every row of the screen as drawn."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def widget_text(app, widget) -> str:
    """The text drawn inside `widget`'s region (borders included)."""
    region = widget.region
    lines = screen_lines(app)[region.y: region.y + region.height]
    return "\n".join(line[region.x: region.x + region.width] for line in lines)


def panel_text(app, widget) -> str:
    """A bordered panel's text as one line: borders dropped, wrapped lines joined."""
    inner = [line[1:-1] for line in widget_text(app, widget).splitlines()[1:-1]]
    return " ".join(" ".join(inner).split())


async def wait_until(pilot, condition, timeout: float = 5.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds (the watcher thread polls every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause()  # let the bound widgets redraw
