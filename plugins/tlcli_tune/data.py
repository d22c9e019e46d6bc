"""The JSON Lines `tlcli sft` and `tlcli dpo` read, normalised to chats (lists of ``{"role", "content"}``).

SFT, one object a line, any of:

- chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``
- prompt/completion: ``{"prompt": "...", "completion": "..."}``: a user turn and the assistant's reply
  (either side may instead be a list of messages, as TRL's conversational prompt/completion)
- Alpaca: ``{"instruction": "...", "input": "...", "output": "..."}``: the user turn is the instruction,
  then a blank line and the input when there is one; an optional ``"system"`` becomes a system turn

DPO: ``{"prompt", "chosen", "rejected"}``, each a string (a user turn, assistant replies) or a list of
messages; or ``{"chosen", "rejected"}`` as two whole conversations whose shared beginning is the prompt.

Plain strings become chats on purpose: the tuned model is then prompted exactly as it was trained, by its
chat template (the model's own, or tlcli's plain template for a model without one; see chat.py), in
`tlcli generate`, `prompt run`, `rag ask` and `agents solve` alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tlcli.console.errors import UsageError

ROLES = ("system", "user", "assistant", "tool")
SFT_FORMATS = ('{"messages": [{"role", "content"}, ...]}, {"prompt", "completion"} or '
               '{"instruction", "input", "output"}')
DPO_FORMAT = '{"prompt", "chosen", "rejected"} (strings or lists of {"role", "content"} messages)'
MAX_LINE = 16 << 20  # one example of 16 MB is a mistake (a binary file), not data


@dataclass
class Pair:
    """A preference: the prompt's messages, and the chosen and the rejected replies (assistant messages)."""

    prompt: list[dict]
    chosen: list[dict]
    rejected: list[dict]


def read_jsonl(path: str | Path, what: str) -> list[tuple[str, dict]]:
    """``(where, object)`` for every non-blank line of a JSON Lines file; ``where`` is ``FILE:LINE``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path}: no such file; pass a JSON Lines file (one JSON object a line)")
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if len(line) > MAX_LINE:
                    raise UsageError(f"{path}:{number}: a line of more than {MAX_LINE >> 20} MB; is this JSON Lines?")
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as error:
                    raise UsageError(f"{path}:{number}: not JSON ({error.msg}); each line must be one JSON object") from None
                if not isinstance(value, dict):
                    raise UsageError(f"{path}:{number}: a JSON {type(value).__name__}, not an object")
                rows.append((f"{path}:{number}", value))
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path}: not UTF-8 text; pass a JSON Lines file") from None
    if not rows:
        raise UsageError(f"{what} {path}: no examples (the file is empty)")
    return rows


def _text(value, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{where}: \"{key}\" must be a string, not {type(value).__name__}")
    return value


def _messages(value, where: str, key: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where}: \"{key}\" must be a non-empty list of {{\"role\", \"content\"}} messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise UsageError(f"{where}: {key}[{i}] must be an object with string \"role\" and \"content\"")
        if message["role"] not in ROLES:
            raise UsageError(f"{where}: {key}[{i}] has role {message['role']!r}; roles are {', '.join(ROLES)}")
        out.append({"role": message["role"], "content": message["content"]})
    return out


def _turns(value, where: str, key: str, role: str) -> list[dict]:
    """A string as one ``role`` message, or a list of messages as they are."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return _messages(value, where, key)


def sft_chat(record: dict, where: str) -> list[dict]:
    """One SFT example as a chat with at least one assistant turn (module docstring for the formats)."""
    if "messages" in record:
        messages = _messages(record["messages"], where, "messages")
    elif "prompt" in record and "completion" in record:
        messages = (_turns(record["prompt"], where, "prompt", "user")
                    + _turns(record["completion"], where, "completion", "assistant"))
    elif "instruction" in record and "output" in record:
        user = _text(record["instruction"], where, "instruction")
        extra = record.get("input") or ""
        if _text(extra, where, "input").strip():
            user = f"{user}\n\n{extra}"
        messages = [{"role": "user", "content": user},
                    {"role": "assistant", "content": _text(record["output"], where, "output")}]
        if record.get("system"):
            messages.insert(0, {"role": "system", "content": _text(record["system"], where, "system")})
    else:
        raise UsageError(f"{where}: not an SFT example (keys {', '.join(sorted(record)[:6]) or 'none'}); expected "
                         f"{SFT_FORMATS}")
    if not any(m["role"] == "assistant" for m in messages):
        raise UsageError(f"{where}: no assistant turn: nothing to learn from this example")
    return messages


def preference_pair(record: dict, where: str) -> Pair:
    """One DPO example (module docstring for the formats)."""
    if "chosen" not in record or "rejected" not in record:
        raise UsageError(f"{where}: not a preference pair (keys {', '.join(sorted(record)[:6]) or 'none'}); "
                         f"expected {DPO_FORMAT}")
    if "prompt" in record:
        prompt = _turns(record["prompt"], where, "prompt", "user")
        chosen = _turns(record["chosen"], where, "chosen", "assistant")
        rejected = _turns(record["rejected"], where, "rejected", "assistant")
    else:  # two whole conversations: the prompt is what they share (TRL's implicit prompt)
        whole_chosen = _messages(record["chosen"], where, "chosen")
        whole_rejected = _messages(record["rejected"], where, "rejected")
        shared = 0
        while (shared < min(len(whole_chosen), len(whole_rejected)) - 1
               and whole_chosen[shared] == whole_rejected[shared]):
            shared += 1
        prompt, chosen, rejected = whole_chosen[:shared], whole_chosen[shared:], whole_rejected[shared:]
        if not prompt:
            raise UsageError(f"{where}: \"chosen\" and \"rejected\" share no prompt; add a \"prompt\" key")
    for key, turns in (("chosen", chosen), ("rejected", rejected)):
        if not any(m["role"] == "assistant" for m in turns):
            raise UsageError(f"{where}: \"{key}\" holds no assistant message")
    return Pair(prompt, chosen, rejected)


def read_sft(path: str | Path, what: str = "DATA") -> list[list[dict]]:
    return [sft_chat(record, where) for where, record in read_jsonl(path, what)]


def read_pairs(path: str | Path, what: str = "PAIRS") -> list[Pair]:
    return [preference_pair(record, where) for where, record in read_jsonl(path, what)]


def split(items: list, val_share: float, seed: int) -> tuple[list, list]:
    """A seeded random split: (train, validation); no validation when the share rounds to nothing."""
    import random

    count = int(round(len(items) * val_share))
    if val_share <= 0 or count == 0:
        return list(items), []
    if count >= len(items):
        raise UsageError(f"--val-split {val_share} leaves no training examples out of {len(items)}; lower it")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]
