"""``files:DIR``: read-only access confined to one folder. Paths are resolved (symlinks included) and must
stay inside the folder; files are read up to a size cap; nothing is ever written."""

from __future__ import annotations

import os
from pathlib import Path

from tlcli.console.errors import UsageError
from tlcli_agents.tools import Tool, ToolError

MAX_READ_BYTES = 64 * 1024
MAX_LISTED = 200


class ConfinedFolder:
    def __init__(self, root: str | Path):
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            raise UsageError(f"--tools files:{root}: {root} is not a folder; name an existing folder")
        self.root = Path(os.path.realpath(root_path))

    def resolve(self, relative: str) -> Path:
        """The real path of ``relative`` inside the folder; ToolError when it would leave it."""
        if not isinstance(relative, str) or "\x00" in relative:
            raise ToolError("path must be a string")
        candidate = Path(relative)
        if candidate.is_absolute():
            raise ToolError(f"{relative!r}: give a path relative to the folder, not an absolute one")
        real = Path(os.path.realpath(self.root / candidate))
        if real != self.root and self.root not in real.parents:
            raise ToolError(f"{relative!r} is outside the folder this tool may read")
        return real

    def read(self, relative: str) -> str:
        path = self.resolve(relative)
        if not path.is_file():
            raise ToolError(f"{relative!r} is not a file in the folder")
        with open(path, "rb") as handle:
            data = handle.read(MAX_READ_BYTES + 1)
        text = data[:MAX_READ_BYTES].decode("utf-8", "replace")
        if len(data) > MAX_READ_BYTES:
            text += f"\n[truncated: only the first {MAX_READ_BYTES} bytes are shown]"
        return text

    def listing(self, relative: str = ".") -> str:
        folder = self.resolve(relative or ".")
        if not folder.is_dir():
            raise ToolError(f"{relative!r} is not a folder")
        names = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            try:
                self.resolve(str(Path(entry.path).relative_to(self.root)))
            except (ToolError, ValueError):
                continue  # a symlink leading out is not shown
            names.append(entry.name + ("/" if entry.is_dir() else ""))
            if len(names) >= MAX_LISTED:
                names.append(f"[only the first {MAX_LISTED} entries are shown]")
                break
        return "\n".join(names) or "(empty folder)"


def files_tools(root: str) -> list[Tool]:
    folder = ConfinedFolder(root)
    path_schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    return [
        Tool("read_file", "files", f"Read a text file (first {MAX_READ_BYTES // 1024} KB) from the shared folder; "
             "path relative to it.", path_schema, lambda a: folder.read(a.get("path"))),
        Tool("list_files", "files", "List a folder inside the shared folder (path relative to it, '.' for the top).",
             {"type": "object", "properties": {"path": {"type": "string"}}},
             lambda a: folder.listing(a.get("path", "."))),
    ]
