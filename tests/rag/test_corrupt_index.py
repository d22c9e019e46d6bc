"""A damaged index folder (truncated or garbage files, a bad manifest, a dropped table) is one line naming
the file and the fix, exit 2, never a traceback; `rag info` reads what it reports; `--reembed` repairs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

INDEX = Path(".tlcli-index")


@pytest.fixture
def in_small(small_copy, cli, monkeypatch):
    monkeypatch.chdir(small_copy)
    return small_copy


def manifest() -> dict:
    return json.loads((INDEX / "manifest.json").read_text())


def generation_file(suffix: str) -> Path:
    return INDEX / f"gen-{manifest()['generation']:06d}.{suffix}"


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]  # progress lines may come first
    assert message.startswith("tlcli: error: "), result.stderr
    for needle in needles:
        assert needle in message, message
    return message


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_info_on_a_sound_index_still_works(in_small, cli):
    result = cli("rag", "info", "--json")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_faiss_file(in_small, cli, damage):
    path = generation_file("faiss")
    truncate(path) if damage == "truncated" else path.write_bytes(b"not a faiss index\0" * 50)
    one_line_error(cli("rag", "info"), path.name, "--reembed")
    one_line_error(cli("rag", "search", "pip install", "--mode", "dense"), path.name, "--reembed")
    if damage == "truncated":  # its recorded size gives it away without reading it: an unchanged update refuses
        one_line_error(cli("rag", "index", "docs", "notes"), path.name, "truncated", "--reembed")
    Path("docs/new.md").write_text("# New\n\nA new page about tomatoes.\n")  # an update reads the vectors
    one_line_error(cli("rag", "index", "docs", "notes"), path.name, "--reembed")
    assert cli("rag", "index", "docs", "notes", "--reembed").exit_code == 0  # the fix it names works
    assert cli("rag", "search", "pip install", "--mode", "dense").exit_code == 0
    assert cli("rag", "info").exit_code == 0


def test_a_truncated_sqlite_file(in_small, cli):
    path = generation_file("sqlite")
    truncate(path, 0.4)
    one_line_error(cli("rag", "info"), path.name, "--reembed")
    one_line_error(cli("rag", "search", "pip install", "--mode", "lexical"), path.name, "--reembed")
    one_line_error(cli("rag", "index", "docs", "notes"), path.name, "--reembed")
    assert cli("rag", "index", "docs", "notes", "--reembed").exit_code == 0


def test_a_garbage_sqlite_file(in_small, cli):
    path = generation_file("sqlite")
    path.write_bytes(b"garbage" * 1000)
    one_line_error(cli("rag", "info"), path.name, "--reembed")
    one_line_error(cli("rag", "search", "pip install"), path.name, "--reembed")
    one_line_error(cli("rag", "index", "docs", "notes"), path.name, "--reembed")


def test_a_dropped_fts_table(in_small, cli):
    path = generation_file("sqlite")
    connection = sqlite3.connect(path)
    connection.execute("DROP TABLE chunks_fts")
    connection.commit()
    connection.close()
    one_line_error(cli("rag", "search", "pip install", "--mode", "lexical"), path.name, "chunks_fts", "--reembed")
    one_line_error(cli("rag", "info"), path.name, "--reembed")
    one_line_error(cli("rag", "index", "docs", "notes"), path.name, "--reembed")
    assert cli("rag", "index", "docs", "notes", "--reembed").exit_code == 0
    assert cli("rag", "search", "pip install", "--mode", "lexical").exit_code == 0


def test_a_manifest_naming_a_missing_generation(in_small, cli):
    data = manifest()
    data["generation"] = 7
    (INDEX / "manifest.json").write_text(json.dumps(data))
    for args in (["rag", "info"], ["rag", "search", "x"], ["rag", "index", "docs", "notes"]):
        one_line_error(cli(*args), "gen-000007", "missing", "--reembed")
    assert cli("rag", "index", "docs", "notes", "--reembed").exit_code == 0


@pytest.mark.parametrize("value", ["../../x", -5, 0, 1.5, True, None, 10**30])
def test_a_manifest_with_a_bad_generation(in_small, cli, value, tmp_path):
    data = manifest()
    data["generation"] = value
    (INDEX / "manifest.json").write_text(json.dumps(data))
    for args in (["rag", "info"], ["rag", "search", "x"], ["rag", "index", "docs", "notes"], ["rag", "serve"]):
        one_line_error(cli(*args), "manifest.json", "generation", "--reembed")
    assert not list(tmp_path.rglob("x")) and not Path("../../x").exists()
    assert cli("rag", "index", "docs", "notes", "--reembed").exit_code == 0
    assert manifest()["generation"] == 1 and cli("rag", "info").exit_code == 0


@pytest.mark.parametrize("text", ["", "[1, 2]", '{"generation": 1}', "{" * 100_000, '{"format": 1, "x": 2}'])
def test_a_manifest_that_is_not_one(in_small, cli, text):
    (INDEX / "manifest.json").write_text(text)
    one_line_error(cli("rag", "info"), "manifest.json")
