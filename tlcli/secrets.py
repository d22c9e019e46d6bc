"""Secrets never reach a terminal, a log or a file: one place that masks them.

Two ways a secret is recognised: by the name of the option that holds it (``api_key``, ``token``, ...) and by
its shape in free text (``Bearer ...``, ``sk-...``, ``user:password@`` in a URL). Values registered with
:func:`remember_secret` (the key a backend actually sends) are masked wherever they appear.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# Whole key names only: ``max_tokens`` and ``api_key_env`` (the *name* of a variable) are not secrets.
_SECRET_NAME = re.compile(r"(^|[_-])(api[_-]?key|apikey|secret|password|passwd|authorization|credentials?|token)$", re.I)
_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{4,}"), r"\1" + MASK),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"(?i)\b(hf_[A-Za-z0-9]{8,})"), MASK),
    # scheme://user:password@host -> scheme://***@host
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1" + MASK + "@"),
    (re.compile(r"(?i)((?:api[_-]?key|access_token|token)=)[^&\s]+"), r"\1" + MASK),
]
_KNOWN: set[str] = set()


def remember_secret(value: str | None) -> None:
    """Mask this exact value everywhere from now on (a key read from the environment, say)."""
    if value and len(value) >= 4:
        _KNOWN.add(value)


def redact_text(text: str) -> str:
    """``text`` with every recognised secret replaced by ``***``."""
    if not isinstance(text, str) or not text:
        return text
    for value in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """A copy of a config-like value (dicts, lists, strings) with secrets masked: values under a secret-looking
    key are replaced whole, strings elsewhere are scanned with :func:`redact_text`."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_NAME.search(k) and v not in (None, "", False)
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
