"""``scripted:REPLIES.json``: a backend that answers from a list, for tests, replays and dry runs.

The file holds a JSON list; each item is a reply text, or ``{"content": "...", "tool_calls": [{"name":
"calculator", "arguments": {"expression": "2+2"}}]}`` (``arguments`` as an object or as JSON text).
Replies are used in turn (cycling when they run out); each sample of each call takes the next one.
Usage is a whitespace token count, and the backend says it is scripted (``scripted = True``): its answers
must never be presented as a model's.

In-process, a reply may also be a callable taking (the prompt, or the chat messages, and the sample
index) and returning a reply item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

from tlcli.console.errors import UsageError
from tlcli.llm.base import (
    LLM, ChatResult, Choice, Generation, ToolCall, Usage, check_messages, check_tools, cut_at_stop,
    sampling_params,
)

Reply = Union[str, dict, Callable[[object, int], Union[str, dict]]]
FORMAT = ('a non-empty JSON list whose items are reply strings or {"content": "...", "tool_calls": '
          '[{"name": "...", "arguments": {...}}]}')


@dataclass
class GenerateCall:
    """What one ``generate`` or ``chat`` call asked for (tests assert on these). ``prompts`` holds the
    prompts of a ``generate`` call; a ``chat`` call has ``messages`` and ``tools`` instead."""

    prompts: list[str]
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    seed: int | None
    messages: list[dict] | None = None
    tools: list[dict] | None = None


@dataclass
class ScriptedLLM(LLM):
    replies: list[Reply]
    spec: str = "scripted"
    supports_tools: bool = True
    calls: list[GenerateCall] = field(default_factory=list)
    _next: int = 0
    _call_ids: int = 0

    scripted = True

    def __post_init__(self):
        problem = next((i for i, r in enumerate(self.replies) if not callable(r) and _item_problem(r)), None)
        if not self.replies or problem is not None:
            where = f" (item {problem}: {_item_problem(self.replies[problem])})" if problem is not None else ""
            raise UsageError(f"scripted replies must be {FORMAT}{where}")

    @classmethod
    def from_file(cls, path: Path, native_tools: bool = True) -> "ScriptedLLM":
        try:
            replies = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise UsageError(f"scripted replies file {path} cannot be read ({error.strerror}); "
                             f"pass scripted:FILE.json holding {FORMAT}") from None
        except ValueError as error:
            raise UsageError(f"scripted replies file {path} is not JSON ({error})") from None
        if not isinstance(replies, list):
            raise UsageError(f"scripted replies file {path} must hold {FORMAT}")
        try:
            return cls(replies, spec=f"scripted:{path}", supports_tools=native_tools)
        except UsageError as error:
            raise UsageError(f"scripted replies file {path}: {error}") from None

    def _take(self, asked, sample: int) -> tuple[str, list[ToolCall]]:
        reply = self.replies[self._next % len(self.replies)]
        self._next += 1
        if callable(reply):
            reply = reply(asked, sample)
            if _item_problem(reply):
                raise UsageError(f"a scripted reply function returned {reply!r:.80}: {_item_problem(reply)}")
        if isinstance(reply, str):
            return reply, []
        calls = []
        for call in reply.get("tool_calls") or []:
            arguments = call.get("arguments", {})
            self._call_ids += 1
            calls.append(ToolCall(str(call.get("id") or f"call_{self._call_ids}"), call["name"],
                                  arguments if isinstance(arguments, str) else json.dumps(arguments)))
        return reply.get("content") or "", calls

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        self.calls.append(GenerateCall(list(prompts), params.n, params.temperature, params.top_p,
                                       params.max_tokens, params.stop, params.seed))
        results = []
        for prompt in prompts:
            texts, reasons = [], []
            for sample in range(params.n):
                text, _ = self._take(prompt, sample)
                text, stopped = cut_at_stop(text, params.stop)
                texts.append(text)
                reasons.append("stop")
            results.append(Generation(texts, len(prompt.split()), [len(t.split()) for t in texts], reasons))
        return results

    def chat(self, messages, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None, tools=None):
        messages = check_messages(messages)
        tools = check_tools(tools)
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        self.calls.append(GenerateCall([], params.n, params.temperature, params.top_p, params.max_tokens,
                                       params.stop, params.seed, messages=list(messages), tools=tools or None))
        choices = []
        completion = 0
        for sample in range(params.n):
            text, calls = self._take(messages, sample)
            if not self.supports_tools and calls:
                # Without native tools the calls are text, as a model would write them.
                text = "\n".join([text] * bool(text) + [json.dumps({"tool": c.name, "arguments": c.arguments})
                                                        for c in calls])
                calls = []
            text, stopped = cut_at_stop(text, params.stop)
            completion += _words(text) + sum(_words(c.arguments) + 1 for c in calls)
            choices.append(Choice(text, calls, "tool_calls" if calls else "stop"))
        prompt = sum(_words(m.get("content") or "") for m in messages)
        return ChatResult(choices, Usage(prompt, completion), self.spec)


def _words(text: str) -> int:
    return len(text.split())


def _item_problem(item) -> str | None:
    """Why a reply item is malformed (None when it is fine)."""
    if isinstance(item, str):
        return None
    if not isinstance(item, dict):
        return f"a {type(item).__name__}, not a string or an object"
    extra = set(item) - {"content", "tool_calls"}
    if extra:
        return f"unknown keys {sorted(extra)}; an object takes content and tool_calls"
    if not isinstance(item.get("content", ""), (str, type(None))):
        return "content must be a string"
    calls = item.get("tool_calls", [])
    if not isinstance(calls, list):
        return "tool_calls must be a list"
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            return "each tool call needs a name"
        if not isinstance(call.get("arguments", {}), (str, dict)):
            return "a tool call's arguments must be an object or JSON text"
    return None
