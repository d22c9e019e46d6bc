"""Input files of `rag index` and `rag eval` that are hostile or odd, and where a build leaves its record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DEEP = "[" * 100_000 + "]" * 100_000


def corpus(root: Path, extra: dict[str, str | bytes]) -> None:
    files = {f"docs/page{i}.md": f"# Page {i}\n\nPage {i} is about topic number {i}.\n" for i in range(25)}
    files.update(extra)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())


@pytest.mark.parametrize("name, text", [("docs/deep.json", DEEP), ("docs/deep.jsonl", '{"text": "a"}\n' + DEEP),
                                        ("docs/deep.ipynb", '{"cells": ' + DEEP + "}")], ids=["json", "jsonl", "ipynb"])
def test_a_document_nested_100k_deep_is_skipped_as_bad(cli, tmp_path, name, text):
    corpus(tmp_path, {name: text})
    result = cli("rag", "index", "docs", "--json")
    assert result.exit_code == 0, result.stderr
    record = result.json_lines()[-1]
    assert [s["path"] for s in record["skipped"]] == [name] and "nested too deeply" in record["skipped"][0]["reason"]
    assert record["chunks"] >= 25 and "Traceback" not in result.stderr


def test_qrels_nested_deep_or_not_utf8_are_one_line(cli, small_copy, monkeypatch):
    monkeypatch.chdir(small_copy)
    for data in ('{"query": "x", "relevant": ' + DEEP + "}\n", DEEP + "\n", '{"query": "x", "relevant": [[1]]}\n',
                 b'{"query": "caf\xe9", "relevant": ["docs/errors.md"]}\n'):
        qrels = Path("qrels.jsonl")
        qrels.write_bytes(data if isinstance(data, bytes) else data.encode())
        result = cli("rag", "eval", "--qrels", qrels)
        assert result.exit_code == 2, result.stderr
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1 and "--qrels" in message and "Traceback" not in message, message


def test_a_byte_order_mark_in_qrels_is_accepted(cli, small_copy, monkeypatch):
    monkeypatch.chdir(small_copy)
    Path("qrels.jsonl").write_bytes("\ufeff".encode() + b'{"query": "E4021", "relevant": ["docs/errors.md"]}\n')
    result = cli("rag", "eval", "--qrels", "qrels.jsonl", "--mode", "lexical", "--json")
    assert result.exit_code == 0, result.stderr


def test_a_typo_in_a_path_is_named_before_anything_is_made(cli, tmp_path):
    corpus(tmp_path, {})
    result = cli("rag", "index", "docs", "dosc")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "dosc: no such file or folder" in message and "--max-bad" not in message
    assert not Path("runs").exists() and not Path(".tlcli-index").exists()


def test_a_build_leaves_its_record_in_the_index_folder_not_in_runs(cli, tmp_path):
    corpus(tmp_path, {})
    result = cli("rag", "index", "docs", "--json")
    assert result.exit_code == 0, result.stderr
    assert not Path("runs").exists()
    run = Path(result.json_lines()[-1]["run_dir"])
    assert run.parent == Path(".tlcli-index/builds") and (run / "events.jsonl").is_file()
    visible = tmp_path / "visible-index"
    result = cli("rag", "index", "docs", "--index", visible, "--json")  # a new index folder, not hidden
    assert result.exit_code == 0, result.stderr
    assert cli("rag", "index", "docs", "--index", visible).exit_code == 0  # the builds/ folder is its own
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own file")
    result = cli("rag", "index", "docs", "--index", mine)
    assert result.exit_code == 2 and not (mine / "builds").exists()  # someone else's folder: nothing made


def test_extensionless_text_files_are_read_and_binaries_passed_over(cli, tmp_path):
    corpus(tmp_path, {"docs/README": "Read me: the flux capacitor needs 1.21 gigawatts.\n",
                      "docs/LICENSE": "Permission is granted to use the zorblax library freely.\n",
                      "docs/pkg/METADATA": "Name: quuxpackage\nVersion: 1.0\n",
                      "docs/tool": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4})
    result = cli("rag", "index", "docs", "--json")
    assert result.exit_code == 0, result.stderr
    record = result.json_lines()[-1]
    assert record["added"] == 28 and record["skipped"] == []
    for query, source in (("flux capacitor gigawatts", "docs/README"), ("zorblax", "docs/LICENSE"),
                          ("quuxpackage", "docs/pkg/METADATA")):
        hits = cli("rag", "search", query, "--mode", "lexical", "--json").json_lines()
        assert hits and hits[0]["source"] == source
    named = cli("rag", "index", "docs/tool")
    assert named.exit_code == 2 and "not UTF-8 text" in named.stderr  # named explicitly: said, not passed over
