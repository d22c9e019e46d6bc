"""BadFiles (warnings, --max-bad threshold, JSON summary) and parse_max_bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlcli.data.common import BadImage
from tlcli.data.sources import BadFiles, parse_max_bad
from tlcli.console.errors import EXIT_USAGE, UsageError


def bad_files_with(count: int) -> BadFiles:
    bad_files = BadFiles()
    for i in range(count):
        bad_files.add(BadImage(Path(f"img{i}.jpg"), "truncated file"))
    return bad_files


def test_add_warns_at_once_with_path_and_reason(capsys):
    bad_files = BadFiles()
    bad_files.add(BadImage(Path("photos/[red]x.jpg"), "not an image"))
    # Printed verbatim: a name that looks like rich markup must not be eaten.
    assert "skipped photos/[red]x.jpg: not an image" in capsys.readouterr().err
    assert len(bad_files) == 1
    assert bad_files.summary() == [{"path": "photos/[red]x.jpg", "reason": "not an image"}]


@pytest.mark.parametrize(
    "bad, total, max_bad, fails",
    [
        (5, 100, 0.05, False),  # exactly at the limit is allowed
        (6, 100, 0.05, True),
        (29, 100, 0.29, False),  # 0.29 * 100 == 28.999... in floating point
        (1, 19, 0.05, True),  # 5% of 19 is 0.95 files: not even one
        (1, 20, 0.05, False),
        (0, 0, 0.05, False),
        (1, 0, 0.05, True),  # nothing readable at all
        (1, 10, 0.0, True),
        (10, 10, 1.0, False),
    ],
)
def test_check_thresholds(bad, total, max_bad, fails):
    bad_files = bad_files_with(bad)
    if not fails:
        bad_files.check(total, max_bad)
        return
    with pytest.raises(UsageError) as caught:
        bad_files.check(total, max_bad)
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE
    assert "--max-bad" in message and f"{bad} of {total} files" in message


def test_check_message_suggests_a_limit_that_would_pass():
    bad_files = bad_files_with(7)
    with pytest.raises(UsageError) as caught:
        bad_files.check(100, 0.05)
    assert "--max-bad 7%" in str(caught.value)
    bad_files.check(100, parse_max_bad("7%"))  # and it does pass


@pytest.mark.parametrize(
    "text, value", [("5%", 0.05), ("0.05", 0.05), (" 12.5% ", 0.125), ("0", 0.0), ("100%", 1.0), ("1", 1.0)]
)
def test_parse_max_bad_accepts_percentages_and_fractions(text, value):
    assert parse_max_bad(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "-1%", "101%", "1.5", "nan", "inf", "5 %%"])
def test_parse_max_bad_rejects_everything_else(text):
    with pytest.raises(UsageError, match="--max-bad"):
        parse_max_bad(text)


def test_parse_max_bad_hints_at_a_forgotten_percent_sign():
    with pytest.raises(UsageError, match="did you mean 5%"):
        parse_max_bad("5")
