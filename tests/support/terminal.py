"""`tlcli` on a real pseudo-terminal (`script -qec`), for tests of what a terminal receives: model and file
text must arrive with its escape sequences escaped (an OSC 52 clipboard write, a CSI screen clear)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

OSC52 = "\x1b]52;c;ZXZpbA==\x07"
CSI = "\x1b[2J\x1b[38;5;196m"
RAW = ("\x1b]52", "\x07", "\x1b[2J", "\x1b[38;5;196m")


def on_terminal(args, cwd: Path, home: Path | None = None, timeout: int = 180, env: dict | None = None
                ) -> tuple[int, str]:
    """`tlcli ARGS` with stdin, stdout and stderr on a pseudo-terminal in ``cwd``: (exit code, what the
    terminal got). TLCLI_HOME is ``home`` (default ``cwd/.home``); TLCLI_LLM is unset."""
    command = shlex.join([sys.executable, "-m", "tlcli", *map(str, args)])
    full = {**os.environ, "TLCLI_HOME": str(home or Path(cwd) / ".home"), "TERM": "xterm-256color",
            "COLUMNS": "250", **(env or {})}
    full.pop("TLCLI_LLM", None)
    done = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=cwd, env=full, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    return done.returncode, done.stdout.decode("utf-8", "replace")


def assert_escaped(screen: str, *shown: str) -> None:
    """None of the raw sequences reached the terminal, and each of ``shown`` did (the text, made visible)."""
    for raw in RAW:
        assert raw not in screen, (raw, screen)
    for text in shown:
        assert text in screen, (text, screen)
