"""Generated CSV / TSV / JSONL / plain-text files and stdin thrown at the text readers (tlcli/data/texts.py).

Whatever the bytes, a reader either returns well-formed rows (non-blank texts, labels without surrounding
spaces) or raises UsageError (exit 2, one line). Any other exception would be a traceback for the user.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlcli.data.texts import read_labelled_texts, read_table, read_texts
from tlcli.console.errors import UsageError

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Cells with the characters that break naive parsers: quotes, separators, line breaks of every kind, NUL,
# lone surrogates' neighbours, BOMs, Unicode line separators, spaces around labels.
tricky = st.sampled_from(["", " ", "cat", "cat ", " cat", "\"", ",", "\t", "\n", "\r", "\r\n", "\x00", "\ufeff",
                          "\u2028", "\x85", "text", "label", "é", "{", "}", "[", "null", "1"])
cell = st.one_of(st.text(max_size=12), tricky, st.lists(tricky, max_size=4).map("".join))
rows = st.lists(st.lists(cell, min_size=0, max_size=4), max_size=8)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=10), tricky)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(st.sampled_from(
                                                                   ["text", "label", "input", "target", "x"]),
                                                                   inner, max_size=3)), max_leaves=8)


def _write(suffix: str, data: bytes) -> Path:
    handle, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    return Path(name)


def _check(path: Path) -> None:
    try:
        for need_label in (True, False):
            try:
                table = read_table(path, need_label=need_label)
            except UsageError:
                continue
            assert table and all(isinstance(text, str) and text.strip() for text, _ in table)
            for _, label in table:
                assert label is None or (isinstance(label, str) and label == label.strip() and label)
            if need_label:
                samples = read_labelled_texts(path)
                assert len(samples) == len(table) and all(s.label for s in samples)
    finally:
        path.unlink()


@SETTINGS
@given(rows=rows, suffix=st.sampled_from([".csv", ".tsv"]), header=st.booleans())
def test_generated_csv_rows(rows, suffix, header):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t" if suffix == ".tsv" else ",")
    if header:
        writer.writerow(["text", "label"])
    writer.writerows(rows)
    _check(_write(suffix, buffer.getvalue().encode("utf-8", "surrogatepass")))


@SETTINGS
@given(values=st.lists(json_value, max_size=6), junk=st.lists(st.text(max_size=8), max_size=2))
def test_generated_jsonl_rows(values, junk):
    lines = [json.dumps(v, ensure_ascii=False) for v in values] + junk
    _check(_write(".jsonl", "\n".join(lines).encode("utf-8", "surrogatepass")))


@SETTINGS
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]))
def test_arbitrary_bytes(data, suffix):
    _check(_write(suffix, data))


@SETTINGS
@given(lines=st.lists(st.one_of(st.text(max_size=10), tricky), max_size=6), data=st.binary(max_size=40))
def test_stdin_text_and_bytes(lines, data):
    try:
        texts = read_texts(["-"], stdin=io.StringIO("\n".join(lines)))
        assert all(isinstance(t, str) and t.strip() for t in texts)
    except UsageError:
        pass
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    try:
        read_texts(["-"], stdin=stream)
    except UsageError:
        pass


def test_non_utf8_label_is_one_line(cli, tmp_path):
    data = tmp_path / "latin1.csv"
    data.write_bytes("text,label\nun café noir,boisson\nune crêpe,plat\n".encode("latin-1"))
    result = cli("text", "probe", data, "--out", "never")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "not UTF-8" in result.stderr and "latin1.csv:2" in result.stderr
    assert not Path("never").exists()


def test_labels_with_spaces_are_stripped_with_a_warning(tmp_path, capsys):
    data = tmp_path / "spaces.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": l}) + "\n"
                            for t, l in [("a", "cat"), ("b", "cat "), ("c", " dog"), ("d", "dog")]))
    samples = read_labelled_texts(data)
    assert [s.label for s in samples] == ["cat", "cat", "dog", "dog"]
    warning = capsys.readouterr().err
    assert "2 label(s) had spaces around them" in warning and "'cat ' -> 'cat'" in warning


@pytest.mark.parametrize("args", [["text", "zeroshot", "x", "--labels", "a,b", "--label-template", "{} {}"],
                                  ["text", "zeroshot", "x", "--labels", "a,b", "-b", "0"],
                                  ["text", "probe", "data.csv", "--weight-decay", "nan"],
                                  ["prompt-tune", "data.csv", "--lr", "inf"],
                                  ["text", "zeroshot", "x", "--labels", "a,b", "--device", "tpu"]])
def test_bad_flags_are_one_line(cli, args):
    result = cli(*args)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
