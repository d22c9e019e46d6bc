"""`tlcli.console.config_file.read_options_file`: every bad --config is one line naming the fix."""

from __future__ import annotations

import os

import pytest

from tlcli.console.config_file import read_options_file
from tlcli.console.errors import UsageError


def test_a_good_file_gives_its_options_with_flag_spelling(tmp_path):
    path = tmp_path / "opts.toml"
    path.write_text('lr = 0.001\nmax-bad = "5%"\nepochs = 3\n', encoding="utf-8")
    assert read_options_file(path) == {"lr": 0.001, "max_bad": "5%", "epochs": 3}


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfepochs = 2\n")
    assert read_options_file(path) == {"epochs": 2}


def error_of(path, **kwargs) -> str:
    with pytest.raises(UsageError) as raised:
        read_options_file(path, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_folder(tmp_path):
    assert error_of(tmp_path) == f"--config {tmp_path}: is a folder; pass a TOML file of options (keys are flag names, e.g. lr = 0.001)"


def test_a_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.toml").startswith(f"--config {tmp_path}/nope.toml: no such file;")


def test_non_utf8_bytes_are_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('label = "café"\n'.encode("latin-1"))
    assert error_of(path) == f"--config {path}: not UTF-8 text (byte 0xe9 at offset 12); save it as UTF-8"


def test_not_toml(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("lr: 0.001\n")
    assert "not valid TOML (" in error_of(path, option="--options")
    assert error_of(path, option="--options").startswith("--options ")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    assert "not a regular file" in error_of(fifo)


def test_a_huge_file_is_refused(tmp_path):
    path = tmp_path / "data.toml"
    path.write_bytes(b"#" * (1024 * 1024 + 1))
    assert "is not an options file" in error_of(path)


def test_escapes_in_the_path_are_shown_escaped(tmp_path):
    path = tmp_path / "a\x1b[2Jb"
    path.mkdir()
    assert "a\\x1b[2Jb: is a folder" in error_of(path)


def test_a_nul_byte(tmp_path):
    assert "NUL byte" in error_of(str(tmp_path / "a\0b"))
