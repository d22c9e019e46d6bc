"""Where texts come from: command-line arguments, stdin lines (``-``), a CSV / TSV / JSONL / plain-text file, or a
table (``.parquet``/``.arrow``, a ``save_to_disk`` folder, ``hf:NAME``: tlcli/data/tables.py).

Every text command (``text zeroshot/probe``, ``prompt-tune``, ``tlcli predict``/``evaluate`` on text runs) reads
through here, so a file means the same thing everywhere. Anything wrong with the input is a
:class:`~tlcli.console.errors.UsageError` naming the file and line; nothing else escapes (tests/hostile checks it).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path, warn

TEXT_COLUMNS = ("text", "sentence", "input", "prompt", "question", "document")
LABEL_COLUMNS = ("label", "class", "category", "target", "answer", "output")


@dataclass(frozen=True)
class TextSample:
    text: str
    label: str
    class_index: int | None = field(default=None, compare=False)  # as LabelledSample's: a ClassLabel's order


def read_texts(args: Sequence[str], input_file: Path | None = None, stdin: IO | None = None,
               columns=None) -> list[str]:
    """Texts in order: each argument is one text, ``-`` reads one text per stdin line (once), then the
    texts of ``input_file`` (its text column; see :func:`read_table`)."""
    texts: list[str] = []
    stdin_read = False
    for arg in args:
        if arg == "-":
            if not stdin_read:
                texts.extend(_stdin_lines(stdin or sys.stdin))
                stdin_read = True
            continue
        texts.append(arg)
    if input_file is not None:
        texts.extend(row[0] for row in read_table(input_file, need_label=False, columns=columns,
                                                  default_split="test"))
    if not texts:
        raise UsageError("no texts: pass TEXTS, '-' to read lines from stdin, or --input FILE")
    return texts


def _stdin_lines(stream: IO) -> list[str]:
    try:
        return [line.rstrip("\r\n") for line in stream if line.strip()]
    except UnicodeDecodeError:
        raise UsageError("stdin: not UTF-8 text; convert it first (e.g. iconv -f latin1 -t utf-8)") from None


def read_labelled_texts(path: Path, label_columns: Sequence[str] = LABEL_COLUMNS, columns=None,
                        default_split: str = "train") -> list[TextSample]:
    """Rows ``text,label`` of a CSV (header optional), JSONL file or table; an empty result is an error.

    Labels lose surrounding spaces (``"cat "`` is ``"cat"``), with a warning, so that a stray space never
    makes a second class silently (the image readers do the same). A table's ClassLabel column gives each
    sample its ``class_index`` (the classes keep the dataset's order). ``columns``
    (``tlcli.data.tables.Columns``): a text or label column the user named."""
    from tlcli.data import tables

    if tables.is_table(path):
        rows = tables.read_text_rows(path, True, columns, _candidates(columns, "text", TEXT_COLUMNS),
                                     _candidates(columns, "label", label_columns), default_split)
        stripped = _stripped_labels(path, [(text, label) for text, label, _ in rows])
        return [TextSample(text, label, index) for (text, label), (_, _, index) in zip(stripped, rows)]
    rows = read_table(path, need_label=True, label_columns=label_columns, columns=columns)
    return [TextSample(text, label) for text, label in rows]


def _candidates(columns, which: str, defaults: Sequence[str]) -> Sequence[str]:
    """The column names to look for: the one the user named, else the usual ones."""
    named = getattr(columns, which, None) if columns is not None else None
    return (named,) if named else defaults


def read_table(path: Path, need_label: bool, label_columns: Sequence[str] = LABEL_COLUMNS, columns=None,
               default_split: str = "train") -> list[tuple[str, str | None]]:
    """(text, label-or-None) rows of a .csv/.tsv (header with text/label columns, or text,label without
    header), a .jsonl ({"text"|"input", "label"|"target"}), a table (parquet, arrow, a datasets folder,
    hf:NAME) or any other file (one text per line). ``columns``: a text or label column the user named,
    which the file must then have (a CSV: in its header)."""
    from tlcli.data import tables

    text_columns = _candidates(columns, "text", TEXT_COLUMNS)
    label_columns = _candidates(columns, "label", label_columns)
    if tables.is_table(path):
        rows = tables.read_text_rows(path, need_label, columns, text_columns, label_columns, default_split)
        return _stripped_labels(path, [(text, label) for text, label, _ in rows])
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{display_path(path)}: no such file; expected a CSV with columns text,label")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            content = handle.read()
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise UsageError(f"{display_path(path)}:{line}: not UTF-8 text; save the file as UTF-8 "
                         "(e.g. iconv -f latin1 -t utf-8)") from None
    except OSError as error:
        raise UsageError(f"{display_path(path)}: cannot read ({error.strerror or error})") from None
    suffix = path.suffix.lower()
    named = columns is not None and (columns.text is not None or columns.label is not None)
    if suffix == ".jsonl":
        rows = _jsonl_rows(path, content, label_columns, text_columns)
    elif suffix in (".csv", ".tsv"):
        rows = _csv_rows(path, content, "\t" if suffix == ".tsv" else ",", label_columns, text_columns, named)
    else:
        rows = [(line, None) for line in io.StringIO(content, newline=None).read().split("\n")]
    rows = [(text, label) for text, label in rows if text.strip()]
    if not rows:
        raise UsageError(f"{display_path(path)} has no rows; expected lines text,label")
    if need_label:
        missing = sum(1 for _, label in rows if not label)
        if missing:
            raise UsageError(f"{display_path(path)}: {missing} row(s) without a label; every row needs text,label")
    return _stripped_labels(path, rows)


def _stripped_labels(path: Path, rows: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    changed: dict[str, str] = {}
    out = []
    for text, label in rows:
        if label is not None and label != label.strip():
            changed.setdefault(label, label.strip())
            label = label.strip()
        out.append((text, label or None))
    if changed:
        shown = ", ".join(f"{raw!r} -> {clean!r}" for raw, clean in list(changed.items())[:3])
        warn(f"{display_path(path)}: {len(changed)} label(s) had spaces around them and were stripped ({shown}"
             f"{', ...' if len(changed) > 3 else ''})")
    return out


def _csv_rows(path: Path, content: str, delimiter: str, label_columns: Sequence[str],
              text_columns: Sequence[str] = TEXT_COLUMNS, named: bool = False):
    # newline="": only \n, \r and \r\n end a row; quoted fields keep their line breaks (csv module's rule).
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        table = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise UsageError(f"{display_path(path)}:{reader.line_num}: not valid CSV ({error})") from None
    if not table:
        return []
    header = [cell.strip().lower() for cell in table[0]]
    text_col = next((header.index(c.lower()) for c in text_columns if c.lower() in header), None)
    if named:  # the user named a column: the first row must be a header that has it
        label_col = next((header.index(c.lower()) for c in label_columns if c.lower() in header), None)
        missing = [(what, names[0]) for what, names, col in (("text", text_columns, text_col),
                                                             ("label", label_columns, label_col))
                   if col is None and len(names) == 1]
        if text_col is None or missing:
            what, name = missing[0] if missing else ("text", text_columns[0])
            raise UsageError(f"{display_path(path)}: no column {display_path(name)!r} (--{what}-column) in its first "
                             f"row; its columns: {display_path(', '.join(cell.strip() for cell in table[0]))}")
        table = table[1:]
    elif text_col is not None:
        label_col = next((header.index(c.lower()) for c in label_columns if c.lower() in header), None)
        table = table[1:]
    else:
        text_col, label_col = 0, 1 if len(table[0]) > 1 else None
    rows = []
    for row in table:
        text = row[text_col] if text_col < len(row) else ""
        label = row[label_col] if label_col is not None and label_col < len(row) else None
        rows.append((text, label if label and label.strip() else None))
    return rows


def _jsonl_rows(path: Path, content: str, label_columns: Sequence[str], text_columns: Sequence[str] = TEXT_COLUMNS):
    rows = []
    # split("\n"), not splitlines(): JSON strings may hold a raw U+2028, which splitlines() would cut.
    for number, line in enumerate(content.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{display_path(path)}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{where}: not valid JSON ({error.msg})") from None
        except RecursionError:
            raise UsageError(f"{where}: JSON nested too deeply; expected an object with a text field") from None
        if isinstance(record, str):
            rows.append((record, None))
            continue
        if not isinstance(record, dict):
            raise UsageError(f"{where}: expected an object with a text field")
        text = next((record[c] for c in text_columns if c in record), None)
        if text is None:
            raise UsageError(f"{where}: no text field (one of {', '.join(text_columns)}); its fields: "
                             f"{display_path(', '.join(map(str, record))[:200])}")
        label = next((record[c] for c in label_columns if c in record), None)
        rows.append((_scalar(text, where, "text"), None if label is None else _scalar(label, where, "label")))
    return rows


def _scalar(value, where: str, name: str) -> str:
    """A JSON string or number as text; a list or object is not a text or a label."""
    if isinstance(value, (dict, list)):
        raise UsageError(f"{where}: the {name} is a JSON {type(value).__name__}; expected a string")
    return value if isinstance(value, str) else json.dumps(value)
