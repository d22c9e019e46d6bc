"""Pulling the final answer out of a completion, normalising it, and majority voting.

Default extraction, first rule that matches wins:

1. ``--answer-regex``: the last match; its first group if it has one, else the whole match.
2. "the answer is X" (last occurrence, any case): X is read as a choice letter when the question has
   choices, else a number if X holds one, else the text up to the end of the sentence.
3. With choices: the last stand-alone choice letter, e.g. "(B)", "B)", "answer: B".
4. The last number in the text ("1,234", "-3.5", "$12").
5. For templates with ``answer_fallback = "first-line"`` (``direct``): the first non-empty line.

Otherwise the completion is a non-answer (``None``): it casts no vote and counts as wrong in eval.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation

NUMBER = r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER = re.compile(NUMBER)
# Only the marker: the phrase after it is cut to the end of its line by hand, so a later marker on the
# same line is not swallowed by an earlier match.
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_LETTER_IN_PHRASE = re.compile(r"^\s*\(?\*{0,2}(?P<l>[A-Za-z])\*{0,2}\)?(?=$|[\s.,;:)])")
_LETTER_ANYWHERE = re.compile(r"\((?P<a>[A-Z])\)|\b(?P<b>[A-Z])\)|\b(?:answer|option|choice)\s*:?\s*\(?(?P<c>[A-Z])\b",
                              re.IGNORECASE)


def normalize(answer) -> str | None:
    """The canonical form votes and gold answers are compared in.

    Numbers lose thousands separators, currency signs and trailing zeros ("1,000.0" -> "1000");
    a single letter is upper-cased ("(b)" -> "B"); other text is lower-cased with spaces collapsed and
    trailing punctuation dropped.
    """
    if answer is None:
        return None
    if isinstance(answer, bool):
        answer = str(answer)
    text = str(answer).strip().strip("*`\"' ").rstrip(".,;:!?").strip()
    if not text:
        return None
    number = text.replace(",", "").replace("$", "").rstrip("%")
    if re.fullmatch(r"[-+]?\d+(?:\.\d+)?", number):
        try:
            value = Decimal(number).normalize()
        except InvalidOperation:
            value = None
        if value is not None:
            # normalize() writes 100 as 1E+2; quantize keeps plain digits.
            plain = format(value, "f")
            return "0" if plain in ("-0", "+0") else plain.lstrip("+")
    letter = re.fullmatch(r"\(?([A-Za-z])\)?", text)
    if letter:
        return letter.group(1).upper()
    return " ".join(text.lower().split())


def _from_phrase(phrase: str, has_choices: bool) -> str | None:
    phrase = phrase.strip()
    if has_choices:
        letter = _LETTER_IN_PHRASE.match(phrase)
        if letter:
            return letter.group("l")
    number = _NUMBER.search(phrase)
    if number:
        return number.group(0)
    sentence = re.split(r"(?<=[^\d])\.(?:\s|$)|\n", phrase, maxsplit=1)[0]
    return sentence or None


def extract_answer(text: str, has_choices: bool = False, regex: re.Pattern | None = None,
                   fallback: str = "none") -> str | None:
    """The normalised final answer of one completion, or None when it gives none (rules in the module
    docstring)."""
    if regex is not None:
        matches = list(regex.finditer(text))
        if not matches:
            return None
        last = matches[-1]
        return normalize(last.group(1) if regex.groups else last.group(0))
    said = list(_ANSWER_IS.finditer(text))
    for match in reversed(said):
        found = _from_phrase(text[match.end():].split("\n", 1)[0], has_choices)
        if found:
            return normalize(found)
    if has_choices:
        letters = list(_LETTER_ANYWHERE.finditer(text))
        if letters:
            last = letters[-1]
            return normalize(last.group("a") or last.group("b") or last.group("c"))
    numbers = _NUMBER.findall(text)
    if numbers:
        return normalize(numbers[-1])
    if fallback == "first-line":
        first = next((line for line in text.splitlines() if line.strip()), "")
        return normalize(first)
    return None


def majority_vote(answers: list[str | None]) -> tuple[str | None, dict[str, int]]:
    """The most frequent answer and the vote counts; non-answers (None) do not vote.

    Ties go to the answer that appeared first among the samples, so the result depends only on the
    completions and their order, never on hashing or dict order. ``votes`` lists answers by count, then
    by first appearance.
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, {}
    first_seen = {}
    for index, answer in enumerate(answers):
        if answer is not None:
            first_seen.setdefault(answer, index)
    ranked = sorted(counts, key=lambda a: (-counts[a], first_seen[a]))
    return ranked[0], {a: counts[a] for a in ranked}


def compile_answer_regex(pattern: str | None) -> re.Pattern | None:
    from tlcli.console.errors import UsageError

    if not pattern:
        return None
    try:
        compiled = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    except re.error as error:
        raise UsageError(f"--answer-regex {pattern!r} is not a valid regular expression ({error}); "
                         "e.g. --answer-regex 'Answer: (\\w+)'") from None
    if compiled.groups > 1:
        raise UsageError(f"--answer-regex {pattern!r} has {compiled.groups} groups; use at most one capturing "
                         "group (the answer), and (?:...) for the rest")
    return compiled
