"""Keep secrets out of everything tlcli writes: messages, events, config files, logs.

``redact(text)`` masks what looks like a credential wherever it appears in a string:

- ``Authorization: Bearer <token>`` -> ``Bearer ***``; ``Basic <base64 of user:password>`` -> ``Basic ***``
- OpenAI-style keys ``sk-...`` (also ``sk-proj-...``) -> ``sk-***``
- credentials in URLs, ``scheme://user:password@host`` -> ``scheme://***@host``
- ``api_key=...`` / ``token=...`` / ``password=...`` query or config pairs -> ``api_key=***``
- the exact values of known secrets: those registered with :func:`register_secret` (the LLM backends
  register the key they send) and those of environment variables whose names say they hold one
  (``*_API_KEY``, ``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*``), when 8 characters or longer.

``redact_config(mapping)`` also masks the values of keys that look secret, recursively (config.json).
``safe_message(text)`` is ``redact`` plus dropping advice we never give (re-running ``torch.load`` with
``weights_only=False`` runs pickled code). Standard library only: this is imported on every start.
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"
_known: set[str] = set()

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}")
_BASIC = re.compile(r"(?i)\b(basic)\s+([A-Za-z0-9+/]{6,}={0,2})")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{6,}")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@")
_SECRET_PAIR = re.compile(r"(?i)\b((?:api[_-]?key|access[_-]?token|token|secret|password|passwd|auth)"
                          r"[\"']?\s*[=:]\s*[\"']?)([^\s&\"',;}]{4,})")
_SECRET_NAME = re.compile(r"(?i)(api[_-]?key|token|secret|password|passwd|credential|authorization)")
# A config *key* is secret only when its whole last word says so: ``max_tokens`` and ``api_key_env`` (the
# name of a variable) are not.
_SECRET_KEY = re.compile(r"(?i)(^|[_-])(api[_-]?key|apikey|secret|password|passwd|authorization|credentials?|"
                         r"token|access[_-]?token|auth[_-]?token)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WEIGHTS_ONLY = re.compile(r"weights_only", re.IGNORECASE)
_FALSE = re.compile(r"\bFalse\b")
_ADVICE = re.compile(r"(?i)\b(re-?run\w*|set|setting|pass|use|try|succeed|load with)\b")
MIN_SECRET = 8


def register_secret(value: str | None) -> None:
    """Remember a secret's value so that ``redact`` masks it wherever it shows up."""
    global _known_list
    if value and len(value) >= MIN_SECRET and value not in _known:
        _known.add(value)
        _known_list = sorted(_known, key=len, reverse=True)


_known_list: list[str] = []


def _known_sorted() -> list[str]:
    return _known_list


_env_cache: tuple[int, list[str]] = (0, [])


def _environment_secrets() -> list[str]:
    """Values of environment variables whose names say they hold a secret. Recomputed only when the
    environment changed: this runs for every string an event or a message carries."""
    global _env_cache
    fingerprint = hash(tuple(os.environ.items()))
    if fingerprint != _env_cache[0]:
        values = [value for name, value in os.environ.items()
                  if len(value) >= MIN_SECRET and _SECRET_NAME.search(name) and not name.endswith("_ENV")]
        _env_cache = (fingerprint, sorted(set(values), key=len, reverse=True))
    return _env_cache[1]


def redact(value: Any) -> Any:
    """``value`` with every credential masked: a string is scanned (see the module docstring), a dict or
    list is masked recursively like a config (:func:`redact_config`), anything else is returned as it is."""
    if isinstance(value, (dict, list, tuple)):
        return redact_config(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact_text(value)


def redact_text(text: Any) -> str:
    """``text`` as a string with every credential masked (see the module docstring)."""
    text = str(text)
    # Longest first, so a secret containing another is masked whole.
    for values in (_known_sorted(), _environment_secrets()):
        for value in values:  # longest first, so a secret containing another is masked whole
            if value in text:
                text = text.replace(value, MASK)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _BASIC.sub(lambda m: f"{m.group(1)} {MASK}" if _is_basic_credential(m.group(2)) else m.group(0), text)
    text = _SK_KEY.sub(f"sk-{MASK}", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _SECRET_PAIR.sub(lambda m: m.group(1) + MASK, text)


def _is_basic_credential(token: str) -> bool:
    import base64
    import binascii

    try:
        return b":" in base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False


def looks_secret(key: str) -> bool:
    """Whether a config or header name says its value is a secret."""
    return bool(_SECRET_KEY.search(key))


def redact_config(value: Any) -> Any:
    """A JSON-like value with secret-named keys masked and every string redacted, recursively."""
    if isinstance(value, dict):
        return {k: (MASK if looks_secret(str(k)) and v not in (None, "") and not isinstance(v, (dict, list))
                    else redact_config(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_config(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def safe_message(text: Any) -> str:
    """A message fit for a terminal or a log: redacted, and without advice to load pickles (torch's own
    errors suggest re-running ``torch.load`` with ``weights_only=False``; tlcli never does that)."""
    lines = []
    for line in redact_text(text).split("\n"):
        sentences = _SENTENCE_END.split(line)
        kept = [s for s in sentences if not (_WEIGHTS_ONLY.search(s) and _FALSE.search(s) and _ADVICE.search(s))]
        lines.append(" ".join(kept) if len(kept) != len(sentences) else line)
    return "\n".join(lines)


# The name the rest of the code base used first.
remember_secret = register_secret
