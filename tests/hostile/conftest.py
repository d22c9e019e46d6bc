"""Fixtures for the hostile suite: small real file systems where the machine allows mounting them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB tmpfs (a disk that fills up); skipped where mounting is not allowed (not root)."""
    where = tmp_path / "small-disk"
    if not _mount_tmpfs(where, "size=256k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the patched-writer tests cover this")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only file system (EROFS even for root, unlike chmod); skipped where mounting is not
    allowed."""
    where = tmp_path / "read-only"
    if not _mount_tmpfs(where, "ro,size=64k"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root); the patched tests cover this")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)
