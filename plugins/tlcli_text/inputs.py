"""Where texts come from: command-line arguments, stdin lines (`-`), or a CSV / JSONL / plain-text file."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from tlcli.errors import UsageError
from tlcli.output import display_path

_TEXT_COLUMNS = ("text", "sentence", "input", "prompt", "question", "document")
_LABEL_COLUMNS = ("label", "class", "category", "target", "answer", "output")


@dataclass(frozen=True)
class TextSample:
    text: str
    label: str


def read_texts(args: Sequence[str], input_file: Path | None = None, stdin: IO | None = None) -> list[str]:
    """Texts in order: each argument is one text, ``-`` reads one text per stdin line (once), then the
    texts of ``input_file`` (its text column; see :func:`read_table`)."""
    texts: list[str] = []
    stdin_read = False
    for arg in args:
        if arg == "-":
            if not stdin_read:
                stream = stdin or sys.stdin
                texts.extend(line.rstrip("\r\n") for line in stream if line.strip())
                stdin_read = True
            continue
        texts.append(arg)
    if input_file is not None:
        texts.extend(row[0] for row in read_table(input_file, need_label=False))
    if not texts:
        raise UsageError("no texts: pass TEXTS, '-' to read lines from stdin, or --input FILE")
    return texts


def read_labelled_texts(path: Path, label_columns: Sequence[str] = _LABEL_COLUMNS) -> list[TextSample]:
    """Rows ``text,label`` of a CSV (header optional) or JSONL file; an empty result is an error."""
    rows = read_table(path, need_label=True, label_columns=label_columns)
    return [TextSample(text, label) for text, label in rows]


def read_table(path: Path, need_label: bool, label_columns: Sequence[str] = _LABEL_COLUMNS) -> list[tuple[str, str | None]]:
    """(text, label-or-None) rows of a .csv/.tsv (header with text/label columns, or text,label without
    header), a .jsonl ({"text"|"input", "label"|"target"}) or any other file (one text per line)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{display_path(path)}: no such file; expected a CSV with columns text,label")
    suffix = path.suffix.lower()
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{display_path(path)}: not UTF-8 text") from None
    if suffix == ".jsonl":
        rows = _jsonl_rows(path, content, label_columns)
    elif suffix in (".csv", ".tsv"):
        rows = _csv_rows(path, content, "\t" if suffix == ".tsv" else ",", label_columns)
    else:
        rows = [(line, None) for line in content.splitlines() if line.strip()]
    rows = [(text, label) for text, label in rows if text.strip()]
    if not rows:
        raise UsageError(f"{display_path(path)} has no rows; expected lines text,label")
    if need_label:
        missing = sum(1 for _, label in rows if not label)
        if missing:
            raise UsageError(f"{display_path(path)}: {missing} row(s) without a label; every row needs text,label")
    return rows


def _csv_rows(path: Path, content: str, delimiter: str, label_columns: Sequence[str]):
    reader = csv.reader(content.splitlines(), delimiter=delimiter)
    try:
        table = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise UsageError(f"{display_path(path)}:{reader.line_num}: not valid CSV ({error})") from None
    if not table:
        return []
    header = [cell.strip().lower() for cell in table[0]]
    text_col = next((header.index(c) for c in _TEXT_COLUMNS if c in header), None)
    if text_col is not None:
        label_col = next((header.index(c) for c in label_columns if c in header), None)
        table = table[1:]
    else:
        text_col, label_col = 0, 1 if len(table[0]) > 1 else None
    rows = []
    for row in table:
        text = row[text_col] if text_col < len(row) else ""
        label = row[label_col].strip() if label_col is not None and label_col < len(row) else None
        rows.append((text, label or None))
    return rows


def _jsonl_rows(path: Path, content: str, label_columns: Sequence[str]):
    rows = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{display_path(path)}:{number}: not valid JSON ({error.msg})") from None
        if isinstance(record, str):
            rows.append((record, None))
            continue
        if not isinstance(record, dict):
            raise UsageError(f"{display_path(path)}:{number}: expected an object with a text field")
        text = next((record[c] for c in _TEXT_COLUMNS if c in record), None)
        if text is None:
            raise UsageError(f"{display_path(path)}:{number}: no text field (one of {', '.join(_TEXT_COLUMNS)})")
        label = next((record[c] for c in label_columns if c in record), None)
        rows.append((str(text), None if label is None else str(label)))
    return rows
