"""Reading questions and exemplars from JSONL files (or stdin with ``-``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from tlcli.console.errors import UsageError


def read_jsonl(source: str) -> list[tuple[int, object]]:
    """(line number, parsed value) for every non-blank line of a file, or of stdin for ``-``."""
    if source == "-":
        lines = sys.stdin.read().splitlines()
        label = "stdin"
    else:
        path = Path(source)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise UsageError(f"input file {source} does not exist; pass a JSONL file or - for stdin") from None
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read {source}: {error}") from None
        label = source
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if number == 1:
            line = line.removeprefix("\ufeff")  # a UTF-8 byte order mark (Windows editors write one)
        try:
            rows.append((number, json.loads(line)))
        except RecursionError:
            raise UsageError(f"{label} line {number} is nested too deeply to be a question; "
                             "write one flat object per line, e.g. {\"id\": 1, \"question\": \"...\"}") from None
        except ValueError as error:  # JSONDecodeError has .msg; an integer of over 4,300 digits has not
            why = getattr(error, "msg", "a number in it has over 4,300 digits")
            raise UsageError(f"{label} line {number} is not JSON ({why}); "
                             "write one object per line, e.g. {\"id\": 1, \"question\": \"...\"}") from None
    return rows


def read_questions(source: str) -> list[dict]:
    """Question records: objects (``id`` defaults to the line number) or bare strings (the question)."""
    records = []
    for number, value in read_jsonl(source):
        if isinstance(value, str):
            value = {"question": value}
        if not isinstance(value, dict):
            raise UsageError(f"{source} line {number}: expected an object like {{\"question\": \"...\"}}, "
                             f"got {type(value).__name__}")
        record = dict(value)
        record.setdefault("id", number)
        _check_id(source, number, record["id"])
        records.append(record)
    if not records:
        raise UsageError(f"{source} holds no questions; write one JSON object per line")
    seen: set = set()
    for record in records:  # one pass: 60k questions take milliseconds, not the seconds ids.count() took
        key = _id_key(record["id"])
        if key in seen:
            raise UsageError(f"{source}: id {record['id']!r} appears more than once; ids must be unique")
        seen.add(key)
    return records


MAX_ID_CHARS = 1000


def _check_id(source: str, number: int, value) -> None:
    """An id is a string or a whole number that fits 64 bits: it keys answers, golds and resumed records."""
    if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
        return
    if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63:
        return
    what = (f"a string of {len(value)} characters" if isinstance(value, str)
            else "a number too large" if isinstance(value, int) and not isinstance(value, bool)
            else f"a JSON {type(value).__name__}".replace("dict", "object"))
    raise UsageError(f"{source} line {number}: id is {what}; an id is a string (up to {MAX_ID_CHARS} characters) "
                     "or a whole number under 2**63, e.g. \"id\": 17")


def _id_key(value):
    """A hashable form of an id; 1 and "1" stay different."""
    return (type(value).__name__, value)


def read_exemplars(source: str):
    """Worked examples for few-shot CoT: objects with question, rationale, answer (and optional choices)."""
    from tlcli.prompts.templates import Exemplar

    exemplars = []
    for number, value in read_jsonl(source):
        try:
            exemplars.append(Exemplar.model_validate(value))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise UsageError(f"{source} line {number}: {where} {first['msg'].lower()}; exemplars are "
                             "{\"question\", \"rationale\", \"answer\"} objects") from None
    if not exemplars:
        raise UsageError(f"exemplars file {source} is empty")
    return exemplars
