"""Questions files that are hostile or odd: ids that cannot key an answer, lines nested 100k deep, a
5,000-digit number, a byte order mark. Each is one line, exit 2 (or accepted, for the BOM)."""

from __future__ import annotations

import json

import pytest

ID_CASES = {
    "list": '[1, 2]',
    "object": '{"a": 1}',
    "5000 digits": "9" * 5000,
    "4000 digits": "9" * 4000,
    "nested 100k deep": "[" * 100_000 + "]" * 100_000,
    "true": "true",
    "float": "1.5",
}


@pytest.mark.parametrize("case", ID_CASES)
def test_a_bad_id_is_one_line(cli, tmp_path, replies_file, case):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": 1, "question": "2 + 2?", "answer": "4"}\n'
                         f'{{"id": {ID_CASES[case]}, "question": "2 + 3?", "answer": "5"}}\n')
    for command in ("eval", "run"):
        result = cli("prompt", command, "direct", "--input", questions, "--llm", replies_file(["The answer is 4."]))
        assert result.exit_code == 2, (case, result.stderr)
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1 and "Traceback" not in message and "line 2" in message, message
        assert "set_int_max_str_digits" not in message


def test_a_line_nested_deep_is_one_line(cli, tmp_path, replies_file):
    questions = tmp_path / "q.jsonl"
    questions.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    result = cli("prompt", "eval", "direct", "--input", questions, "--llm", replies_file(["4"]))
    assert result.exit_code == 2 and "nested too deeply" in result.stderr


def test_a_byte_order_mark_is_accepted(cli, tmp_path, replies_file):
    questions = tmp_path / "q.jsonl"
    questions.write_bytes("\ufeff".encode() + json.dumps({"id": 1, "question": "2 + 2?", "answer": "4"}).encode()
                          + b"\n")
    result = cli("prompt", "eval", "direct", "--input", questions, "--llm", replies_file(["The answer is 4."]),
                 "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json_lines()[-2]["correct"] == 1  # the last line is the summary
