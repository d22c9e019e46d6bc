"""Walk a folder for image files: sorted, deterministic, never looping, never leaving the folder."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from tlcli.data.common import IMAGE_EXTENSIONS, BadImage, has_image_extension
from tlcli.console.output import display_path


def walk_image_files(
    root: os.PathLike | str, *, extensions: frozenset[str] = IMAGE_EXTENSIONS
) -> tuple[list[Path], list[BadImage]]:
    """Every file under ``root`` whose extension is in ``extensions``, and the entries that were skipped.

    Promises:
    - order is depth-first by sorted names (the same as sorting by path components), so runs repeat;
    - symlinks are followed only while they stay inside ``root``; a link leading outside is reported
      (a folder, or a file with an image extension) and skipped;
    - each real folder is visited once, so symlink loops and links to folders already seen cost nothing;
    - dangling links and link loops with an image extension, and unreadable folders, are reported;
    - names starting with "." (``.git``, ``.ipynb_checkpoints``, macOS ``._photo.jpg``) are skipped;
    - paths are spelled under ``root`` as given (not resolved), so they read like the user's own.
    """
    root = Path(os.fsdecode(root))
    root_real = os.path.realpath(root)
    found: list[Path] = []
    bad: list[BadImage] = []
    visited: set[tuple[int, int]] = set()
    # A stack of (is_folder, path); children are pushed in reverse so they pop in sorted order.
    stack: list[tuple[bool, Path]] = [(True, root)]
    while stack:
        is_folder, path = stack.pop()
        if not is_folder:
            found.append(path)
            continue
        try:
            info = os.stat(path)
            key = (info.st_dev, info.st_ino)
            if key in visited:
                continue
            visited.add(key)
            with os.scandir(path) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except PermissionError:
            bad.append(BadImage(path, "permission denied (folder)"))
            continue
        except OSError as error:
            bad.append(BadImage(path, f"unreadable folder ({(error.strerror or str(error)).lower()})"))
            continue
        children: list[tuple[bool, Path]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = _classify(entry, path / entry.name, root_real, extensions, bad)
            if child is not None:
                children.append(child)
        stack.extend(reversed(children))
    return found, bad


def _classify(
    entry: os.DirEntry, path: Path, root_real: str, extensions: frozenset[str], bad: list[BadImage]
) -> tuple[bool, Path] | None:
    """(is_folder, path) to visit, or None to skip (reporting into ``bad`` what the user should hear of)."""
    is_image_name = has_image_extension(entry.name, extensions)
    try:
        if not entry.is_symlink():
            if entry.is_dir(follow_symlinks=False):
                return True, path
            if entry.is_file(follow_symlinks=False):
                return (False, path) if is_image_name else None
            if is_image_name:
                bad.append(BadImage(path, "not a regular file"))
            return None
        try:
            target = os.stat(path)
        except FileNotFoundError:
            if is_image_name:
                bad.append(BadImage(path, "dangling symlink"))
            return None
        except OSError as error:
            if is_image_name:
                reason = "symlink loop" if error.errno == errno.ELOOP else "unreadable symlink"
                bad.append(BadImage(path, reason))
            return None
        is_folder = stat.S_ISDIR(target.st_mode)
        if not _inside(os.path.realpath(path), root_real):
            if is_folder or is_image_name:
                bad.append(BadImage(path, f"symlink leads outside {display_path(root_real)}"))
            return None
        if is_folder:
            return True, path
        if stat.S_ISREG(target.st_mode):
            return (False, path) if is_image_name else None
        if is_image_name:
            bad.append(BadImage(path, "not a regular file"))
        return None
    except PermissionError:
        bad.append(BadImage(path, "permission denied"))
        return None
    except OSError as error:  # EIO on a failing disk, a stale network mount: skip and name it, do not stop
        if is_image_name:
            bad.append(BadImage(path, f"unreadable ({(error.strerror or str(error)).lower()})"))
        return None


def _inside(real_path: str, root_real: str) -> bool:
    try:
        return os.path.commonpath([real_path, root_real]) == root_real
    except ValueError:  # different drives on Windows
        return False
