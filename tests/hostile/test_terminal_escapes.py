"""ESC/OSC sequences and newlines in names reach no terminal raw: skipped-file warnings, tables, progress
lines, plugin failures. (Click already quotes typed values with repr.) (The dashboard's log panel: test_monitor_screens.py.)"""

from __future__ import annotations

import io
import sys

import pytest

from tlcli.console import output
from tlcli.data.bad_files import BadFiles
from tlcli.data.common import BadImage

OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # writes the clipboard on terminals that allow it
FORGED = f"cat{OSC52}.jpg\ntlcli: error: forged line\r"
RAW = ("\x1b", "\x07", "\r")


def assert_safe(text: str, lines: int) -> None:
    assert not any(c in text for c in RAW), repr(text)
    assert len(text.rstrip("\n").split("\n")) == lines, repr(text)


@pytest.fixture
def plain_stderr(monkeypatch):
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: False)


def test_a_skipped_file_warning_is_one_escaped_line(capsys, plain_stderr, tmp_path):
    BadFiles().add(BadImage(tmp_path / FORGED, "corrupt image (cannot identify image file)"))
    err = capsys.readouterr().err
    assert_safe(err, 1)
    assert "cat\\x1b]52;c;ZXZpbA==\\x07.jpg\\ntlcli: error: forged line\\r: corrupt image" in err


def test_a_real_file_named_with_escapes_is_skipped_with_an_escaped_warning(capsys, plain_stderr, tmp_path):
    from tlcli.data.images import load_image

    (tmp_path / FORGED).write_bytes(b"not an image")
    bad = BadFiles()
    try:
        load_image(tmp_path / FORGED)
    except BadImage as error:
        bad.add(error)
    assert len(bad) == 1
    assert_safe(capsys.readouterr().err, 1)


def test_info_with_a_name_that_looks_like_markup_does_not_raise(capsys, plain_stderr):
    output.info("wrote runs/[/x]")
    assert capsys.readouterr().err == "wrote runs/[/x]\n"


def test_info_on_a_terminal_with_markup_like_text_and_escapes(monkeypatch):
    from rich.console import Console

    stream = io.StringIO()
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(output, "stderr_console", lambda: Console(file=stream, force_terminal=True, color_system=None))
    output.info(f"wrote [/x] {FORGED}")
    assert_safe(stream.getvalue(), 1)


def test_the_plain_table_escapes_cells_headers_and_title(capsys):
    output.print_table(f"runs {OSC52}", ["name\n", "n"], [[FORGED, 1], [{"k": OSC52}, 2.5]])
    out = capsys.readouterr().out
    assert_safe(out, 4)  # title, header, two rows
    assert "cat\\x1b]52;c;ZXZpbA==\\x07.jpg\\ntlcli: error: forged line\\r" in out


def test_the_terminal_table_shows_markup_like_names_as_text(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    monkeypatch.setattr(sys, "stdout", stream)
    output.print_table("[/x]", ["[bold]label"], [["[/red]dog"], [FORGED]])
    text = stream.getvalue()
    assert "[/red]dog" in text and "[bold]label" in text and "\x1b]52" not in text and "\x07" not in text


def test_progress_lines_are_escaped(capsys, plain_stderr):
    from tlcli.engine.callbacks import Progress

    progress = Progress()
    progress.on_log("warning", f"skipped {FORGED}")
    progress.on_layers(1, 0, [], [f"block{OSC52}"])
    assert_safe(capsys.readouterr().err, 2)


def test_a_broken_plugins_error_is_escaped(monkeypatch, capsys):
    import types

    import tlcli.registry as registry
    from tlcli.cli import build_app

    failure = types.SimpleNamespace(entry_point=f"evil{OSC52}", error=f"boom\n{OSC52}")
    monkeypatch.setattr(registry, "register_commands", lambda app: [failure])
    build_app()
    err = capsys.readouterr().err
    assert_safe(err, 1)
    assert "evil\\x1b]52" in err
