"""Under a real terminal (`script`), document text (passages, headings, file names) and a model's answer reach
the screen with their terminal controls escaped: an OSC 52 (a clipboard write) or CSI (clear screen, colours)
in a document or a reply is printed as ``\\x1b]52;...``, never run. With --json the text is data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from support.terminal import CSI, OSC52, assert_escaped, on_terminal

pytestmark = pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pseudo-terminal")
EVIL_NAME = "docs/evil\x1b[2J.md"


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory) -> Path:
    """The small corpus plus a document whose heading, text and file name carry escape sequences."""
    from tlcli_rag.build import IndexConfig, build_index

    root = tmp_path_factory.mktemp("hostile")
    files = {"docs/install.md": "# Installing\n\nRun pip install tlcli in a fresh virtual environment.\n",
             "docs/cooking.txt": "Boil the pasta in salted water for nine minutes.\n",
             EVIL_NAME: f"# Zebra {OSC52} stripes\n\nZebra E4021 says {CSI}hello.\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    here = os.getcwd()
    os.chdir(root)  # sources are recorded relative to the folder the index is built from
    try:
        build_index(IndexConfig(paths=["docs"], index=".tlcli-index"))
    finally:
        os.chdir(here)
    return root


def test_search_table_escapes_headings_text_and_file_names(hostile_index):
    code, screen = on_terminal(["rag", "search", "zebra", "--mode", "lexical", "-k", "3"], hostile_index)
    assert code == 0, screen
    assert_escaped(screen, "Zebra \\x1b]52;c;ZXZpbA==\\x07 stripes", "evil\\x1b[2J.md")


def test_ask_without_a_model_escapes_the_passages(hostile_index):
    code, screen = on_terminal(["rag", "ask", "zebra?", "--mode", "lexical", "-k", "1"], hostile_index)
    assert code == 0, screen
    assert_escaped(screen, "[1] docs/evil\\x1b[2J.md:", "(Zebra \\x1b]52;c;ZXZpbA==\\x07 stripes)",
                   "says \\x1b[2J\\x1b[38;5;196mhello")


def test_ask_escapes_the_streamed_answer_and_its_citations(hostile_index, tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([f"Zebras {OSC52} are {CSI}striped [1]."]))
    args = ["rag", "ask", "zebra?", "--mode", "lexical", "-k", "1", "--llm", f"scripted:{replies}"]
    code, screen = on_terminal(args, hostile_index)
    assert code == 0, screen
    assert_escaped(screen, "Zebras \\x1b]52;c;ZXZpbA==\\x07 are \\x1b[2J\\x1b[38;5;196mstriped [1].",
                   "[1] docs/evil\\x1b[2J.md:")
    code, screen = on_terminal([*args, "--json"], hostile_index)
    assert code == 0, screen
    assert_escaped(screen, '"answer": "Zebras \\u001b]52;c;ZXZpbA==\\u0007 are \\u001b[2J')


def test_info_on_a_terminal_has_no_raw_controls(hostile_index):
    code, screen = on_terminal(["rag", "info"], hostile_index)
    assert code == 0, screen
    assert_escaped(screen, "all-MiniLM-L6-v2")
