"""Light definitions shared by the image loader and the path sources (no PIL, no numpy)."""

from __future__ import annotations

import os
from pathlib import Path

from tlcli.console.output import display_path, warn

# What a folder walk picks up. Explicit files are taken whatever their name; the decoder decides.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo",
        ".png", ".apng",
        ".gif",
        ".bmp", ".dib",
        ".webp",
        ".tif", ".tiff",
        ".ppm", ".pgm", ".pbm", ".pnm",
        ".tga",
        ".jp2", ".j2k", ".jpx",
        ".avif",
        ".qoi",
    }
)  # fmt: skip

# PIL's own default limit (about 89.5 megapixels, 256 MiB as RGB). Kept equal on purpose: PIL warns
# above this size and refuses above twice it, so a larger value here would only be half honoured.
DEFAULT_MAX_PIXELS: int = 1024 * 1024 * 1024 // 4 // 3


class BadImage(Exception):
    """A file that cannot be used as an image. ``reason`` is short text for people ("truncated file")."""

    def __init__(self, path: os.PathLike | str | bytes, reason: str):
        # args kept as (path, reason) so the exception pickles (DataLoader workers, torchrun).
        super().__init__(path, reason)
        self.path = path if isinstance(path, Path) else Path(os.fsdecode(path))
        self.reason = reason

    def __str__(self) -> str:
        return f"{display_path(self.path)}: {self.reason}"


def has_image_extension(name: str, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    return os.path.splitext(name)[1].lower() in extensions


def warn_verbatim(message: str) -> None:
    """``tlcli.console.output.warn`` for text holding file names: a name like ``[red]x.jpg`` prints as itself
    instead of being read as rich markup."""
    from rich.markup import escape

    warn(escape(message))
