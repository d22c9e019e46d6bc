"""Generated CSV manifests (any bytes, any rows) thrown at the image side's reader: it returns samples or
raises UsageError (one line, exit 2); no other exception escapes, and every sample it returns is well-formed."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as st

from tlcli.data.labelled import load_labelled, read_manifest
from tlcli.console.errors import UsageError

cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
rows = st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8)


def _csv_text(table: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(table)
    return out.getvalue()


def _check(path: Path) -> None:
    for reader in (read_manifest, load_labelled):
        try:
            samples = reader(path)
        except UsageError as error:
            assert str(error) and "\n" not in str(error).strip()
            continue
        for sample in samples:
            assert isinstance(sample.label, str) and sample.label == sample.label.strip() and sample.label


@settings(max_examples=80, deadline=None)
@given(rows)
def test_generated_csv_rows(table):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.csv"
        path.write_text(_csv_text(table), encoding="utf-8")
        (Path(folder) / "a.png").write_bytes(b"not really a png")
        _check(path)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_generated_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.csv"
        path.write_bytes(data)
        _check(path)
