"""Fixtures for tlcli.data: every kind of image file, made on the spot in tmp_path."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest


@pytest.fixture
def save_image(tmp_path):
    """save_image(name, image, **save_options) -> Path: writes ``image`` under tmp_path (folders made)."""

    def save(name: str, image, **options) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, **options)
        return path

    return save


@pytest.fixture
def small_jpeg(save_image):
    """save the name given as a small valid RGB JPEG; returns its path."""
    from PIL import Image

    def make(name: str = "ok.jpg", colour=(200, 30, 30), size=(16, 12)) -> Path:
        return save_image(name, Image.new("RGB", size, colour), format="JPEG", quality=95)

    return make


@pytest.fixture
def header_only_png(tmp_path):
    """header_only_png(width, height) -> Path: a PNG whose header claims the size and that holds no
    pixels at all, like a crafted decompression bomb (a few dozen bytes on disk)."""

    def make(width: int, height: int, name: str = "bomb.png") -> Path:
        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
        path = tmp_path / name
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
        return path

    return make
