"""Seconds in an openai: spec are finite and at most a day: inf or 1e300 overflowed later (OverflowError)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("option", ["timeout=inf", "timeout=1e300", "timeout=nan", "connect_timeout=inf",
                                    "backoff=1e300", "max_backoff=inf"])
def test_unbounded_seconds_are_one_line(cli, tmp_path, option):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": 1, "question": "2 + 2?"}\n')
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"openai:http://127.0.0.1:9/v1#m?{option}")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and option.split("=")[0] in message, message


def test_a_day_is_still_accepted():
    from tlcli.llm.spec import parse_spec

    assert parse_spec("openai:http://h/v1#m?timeout=86400").timeout == 86400
