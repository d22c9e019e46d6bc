"""``--config FILE``: a TOML file of options whose keys are flag names (``lr = 0.001``, ``max-bad = "5%"``).

One reader for every command, so each bad file is one line saying what is wrong and what to pass instead: a
missing file, a folder, a FIFO or device (never opened in a way that blocks), an unreadable or huge file,
bytes that are not UTF-8, text that is not TOML. Nothing in the file is executed; which options a command
takes from it (and which it never does, like ``trust_remote_code``) is the command's to decide.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from tlcli.console.errors import UsageError

# An options file is a few lines; a larger one is a mistaken path (a dataset, a model file).
MAX_OPTIONS_FILE_BYTES = 1024 * 1024
EXAMPLE = "keys are flag names, e.g. lr = 0.001"


def read_options_file(path: os.PathLike | str, option: str = "--config") -> dict[str, Any]:
    """The options in the TOML file at ``path``, keys with ``-`` spelled ``_``; ``UsageError`` (one line naming
    ``option``, the path, the problem and the fix) for anything that is not a readable UTF-8 TOML file."""
    import tomllib

    from tlcli.console.output import display_path

    path = Path(os.fsdecode(path))
    where = f"{option} {display_path(path)}"
    raw = _read_small_regular_file(path, where)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
                         "save it as UTF-8") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{where}: not valid TOML ({error}); {EXAMPLE}") from None
    return {key.replace("-", "_"): value for key, value in values.items()}


def _read_small_regular_file(path: Path, where: str) -> bytes:
    if "\0" in str(path):
        raise UsageError(f"{where}: a path cannot hold a NUL byte; pass a TOML file of options")
    # O_NONBLOCK: a FIFO named as the config must not wait for a writer; the type is checked on the open file.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file; pass a TOML file of options ({EXAMPLE})") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a folder; pass a TOML file of options ({EXAMPLE})") from None
    except OSError as error:
        raise UsageError(f"{where}: cannot be read ({(error.strerror or str(error)).lower()}); "
                         "pass a TOML file you can read") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{where}: is a folder; pass a TOML file of options ({EXAMPLE})")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{where}: not a regular file; pass a TOML file of options")
        if info.st_size > MAX_OPTIONS_FILE_BYTES:
            raise UsageError(f"{where}: {info.st_size:,} bytes is not an options file (at most "
                             f"{MAX_OPTIONS_FILE_BYTES // 1024} KiB); pass a TOML file of options")
        chunks, size = [], 0
        while size <= MAX_OPTIONS_FILE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_OPTIONS_FILE_BYTES:  # grew after the size check
            raise UsageError(f"{where}: larger than {MAX_OPTIONS_FILE_BYTES // 1024} KiB; pass a TOML file of options")
        return b"".join(chunks)
    except OSError as error:
        raise UsageError(f"{where}: cannot be read ({(error.strerror or str(error)).lower()})") from None
    finally:
        os.close(fd)
