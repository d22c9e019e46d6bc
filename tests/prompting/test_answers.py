import pytest

from tlcli.console.errors import UsageError
from tlcli.prompts.answers import compile_answer_regex, extract_answer, majority_vote, normalize


@pytest.mark.parametrize(
    "text, choices, expected",
    [
        ("3 + 2 = 5. The answer is 5.", False, "5"),
        ("First 12, then 7. So the answer is 1,250 dollars.", False, "1250"),
        ("The answer is 4. Wait, no: the answer is 6.", False, "6"),
        ("We get 3, then 4, so 42", False, "42"),
        ("The total is $1,000.50", False, "1000.5"),
        ("It drops to -3.0 degrees", False, "-3"),
        ("Apples are fruit. The answer is (B).", True, "B"),
        ("The answer is b) apple", True, "B"),
        ("Cars are not food, apples are. (B) apple is right", True, "B"),
        ("Answer: C", True, "C"),
        ("The answer is Paris.", False, "paris"),
        ("no idea at all", False, None),
        ("", False, None),
    ],
)
def test_default_extraction(text, choices, expected):
    assert extract_answer(text, has_choices=choices) == expected


def test_letter_rules_only_with_choices():
    # Without choices "(B)" is just text; the final number wins.
    assert extract_answer("Option (B) has 7 legs", has_choices=False) == "7"
    assert extract_answer("Option (B) has 7 legs", has_choices=True) == "B"


def test_first_line_fallback_for_direct_answers():
    assert extract_answer(" Paris.\nQ: next", fallback="first-line") == "paris"
    assert extract_answer(" Paris.\nQ: next") is None


def test_answer_regex_uses_group_of_last_match():
    regex = compile_answer_regex(r"Final: (\w+)")
    assert extract_answer("Final: cat ... Final: Dog", regex=regex) == "dog"
    assert extract_answer("The answer is 5", regex=regex) is None
    assert extract_answer("x=12; y=13", regex=compile_answer_regex(r"y=\d+")) == "y=13"


@pytest.mark.parametrize("pattern, words", [("(", "not a valid"), ("(a)(b)", "groups")])
def test_bad_answer_regex_is_usage_error(pattern, words):
    with pytest.raises(UsageError, match=words):
        compile_answer_regex(pattern)


@pytest.mark.parametrize(
    "raw, expected",
    [(5, "5"), ("5.0", "5"), ("1,000", "1000"), ("$12", "12"), ("100", "100"), ("0.50", "0.5"),
     ("(b)", "B"), ("  Paris. ", "paris"), ("-0", "0"), ("", None), (None, None), ("New  York", "new york")],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_majority_vote_counts_and_ignores_non_answers():
    answer, votes = majority_vote(["5", None, "6", "5", None])
    assert answer == "5" and votes == {"5": 2, "6": 1}


def test_majority_vote_tie_goes_to_first_seen():
    assert majority_vote(["7", "3", "3", "7"]) == ("7", {"7": 2, "3": 2})
    assert majority_vote(["3", "7", "7", "3"]) == ("3", {"3": 2, "7": 2})
    assert majority_vote([None, "9", "8"])[0] == "9"


def test_majority_vote_without_answers():
    assert majority_vote([None, None]) == (None, {})
