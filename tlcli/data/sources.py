"""Where images come from: command-line paths, folders, stdin lists, class folders, CSV manifests, tables
(parquet, arrow, Hugging Face datasets: tlcli/data/tables.py).

Imports no PIL or numpy. The labelled-data and bad-file helpers live in their own modules and are
re-exported here, so commands import everything about their inputs from one place.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import IO, Iterable, Sequence

from tlcli.data.bad_files import DEFAULT_MAX_BAD, BadFiles, parse_max_bad
from tlcli.data.common import IMAGE_EXTENSIONS, BadImage
from tlcli.data.labelled import (
    LabelledSample,
    load_labelled,
    read_manifest,
    scan_class_folders,
    stratified_split,
)
from tlcli.data.walk import walk_image_files

__all__ = [
    "DEFAULT_MAX_BAD",
    "BadFiles",
    "LabelledSample",
    "expand_paths",
    "load_labelled",
    "parse_max_bad",
    "read_manifest",
    "read_stdin_paths",
    "scan_class_folders",
    "stratified_split",
    "walk_image_files",
]

STDIN_ARGUMENT = "-"


def expand_paths(
    args: Sequence[os.PathLike | str],
    *,
    stdin: IO | None = None,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
    columns=None,
    default_split: str = "train",
) -> tuple[list[Path], list[BadImage]]:
    """The image paths that ``args`` name, in order, and the ones that had to be skipped.

    Each argument is a file (taken whatever its extension; the decoder judges it), a folder (walked
    recursively by ``walk_image_files``: image extensions only, sorted, inside the folder) or ``-``: one
    path per line from ``stdin`` (default ``sys.stdin``), each treated like an argument; read once even if
    ``-`` is given twice. A table (a ``.parquet``/``.arrow`` file, a ``save_to_disk`` folder, ``hf:NAME``)
    gives the images of its image column (``columns.image``, else found by name; ``default_split`` of a
    dataset dictionary), labels ignored; a table that cannot be read at all is a ``UsageError``. A missing
    path, a dangling link or an unreadable folder is reported as a ``BadImage``, never raised. An empty
    result is the caller's to judge.
    """
    from tlcli.data import tables

    def expand(text: str) -> None:
        if tables.is_table(text):
            found, skipped = tables.read_images(text, columns, default_split)
            paths.extend(found)
            bad.extend(skipped)
        else:
            _expand_one(Path(text), extensions, paths, bad)

    paths: list[Path] = []
    bad: list[BadImage] = []
    stdin_read = False
    for arg in args:
        if os.fspath(arg) == STDIN_ARGUMENT:
            if stdin_read:
                continue
            stdin_read = True
            for line in read_stdin_paths(stdin if stdin is not None else sys.stdin):
                expand(line)
        else:
            expand(os.fsdecode(arg))
    return paths, bad


def read_stdin_paths(stream: IO) -> list[str]:
    """The non-blank lines of ``stream``, line endings removed, other spaces kept.

    Bytes are read where the stream has them (``sys.stdin.buffer``) and decoded like file names, so a
    non-UTF-8 name piped in from ``find`` still names its file.
    """
    source: Iterable = getattr(stream, "buffer", None) or stream
    lines = []
    for line in source:
        text = os.fsdecode(line.rstrip(b"\r\n")) if isinstance(line, bytes) else line.rstrip("\r\n")
        if text.strip():
            lines.append(text)
    return lines


def _expand_one(path: Path, extensions: frozenset[str], paths: list[Path], bad: list[BadImage]) -> None:
    if "\0" in str(path):  # no file can have this name (os.stat would raise ValueError)
        bad.append(BadImage(path, "NUL byte in the path"))
        return
    try:
        info = os.stat(path)
    except FileNotFoundError:
        bad.append(BadImage(path, "dangling symlink" if os.path.islink(path) else "no such file"))
        return
    except PermissionError:
        bad.append(BadImage(path, "permission denied"))
        return
    except OSError as error:
        if error.errno == errno.ELOOP:
            reason = "symlink loop"
        elif error.errno == errno.ENOTDIR:
            reason = "no such file"
        else:
            reason = (error.strerror or str(error)).lower()
        bad.append(BadImage(path, reason))
        return
    if stat.S_ISDIR(info.st_mode):
        found, skipped = walk_image_files(path, extensions=extensions)
        paths.extend(found)
        bad.extend(skipped)
    elif not stat.S_ISREG(info.st_mode):  # /dev/zero, a FIFO, a socket: never read (a read could last for ever)
        bad.append(BadImage(path, "not a regular file (a device, FIFO or socket)"))
    else:
        paths.append(path)
