"""The one interface every text-generation backend implements, and the pieces they share.

Two ways in, one backend behind both:

- ``chat(messages, n, ...) -> ChatResult``: OpenAI-format chat messages in; ``n`` choices (text and, where
  the backend does native tool calls, :class:`ToolCall` objects) and token :class:`Usage` out.
- ``generate(prompts, n, ...) -> list[Generation]``: a batch of plain prompts, ``n`` texts each (the prompt
  commands use it).

A backend implements at least one of them; the other has a default built on it. Backends decide how to
batch; callers never loop over samples themselves, so a local model can draw all ``n`` samples from one
prefill and a server gets one request with ``n``.
"""

from __future__ import annotations

import json
from abc import ABC
from dataclasses import dataclass, field
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tlcli.console.errors import UsageError

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Generation:
    """The completions for one prompt.

    texts: the ``n`` completions, stop strings already cut off.
    prompt_tokens: tokens in the prompt as the backend counted them (after any chat template).
    completion_tokens: tokens generated for each text (same order as ``texts``).
    finish_reasons: ``"stop"`` (end of text or a stop string) or ``"length"`` (hit max_tokens), per text.
    """

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: list[int] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + sum(self.completion_tokens)


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for. ``arguments`` is the JSON text as the model wrote it (it may
    not parse: callers answer a malformed call, they do not crash on it)."""

    id: str
    name: str
    arguments: str = "{}"

    def to_message(self) -> dict:
        """The OpenAI wire form, for an assistant message's ``tool_calls``."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Choice:
    """One sampled reply: its text (may be empty when the model only calls tools), its tool calls, and
    why it ended (``"stop"``, ``"length"``, ``"tool_calls"``)."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"

    def to_message(self) -> dict:
        """The assistant message to append to the conversation."""
        # As the API itself returns it: null content for a turn that only calls tools.
        message: dict = {"role": "assistant", "content": self.text or (None if self.tool_calls else "")}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return message


@dataclass(frozen=True)
class Usage:
    """Tokens one call spent: the prompt once (shared by all ``n`` choices) and all choices' completions."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class ChatResult:
    """What ``chat`` returns: ``n`` choices in order, the call's usage, and which backend answered."""

    choices: list[Choice]
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    @property
    def text(self) -> str:
        """The first choice's text (the only one when n=1)."""
        return self.choices[0].text if self.choices else ""


class SamplingParams(BaseModel):
    """How to sample; validated once so every backend sees the same meaning.

    temperature 0 means greedy decoding, which gives one answer: asking for n > 1 greedy samples is a
    mistake worth reporting rather than silently returning n copies.
    """

    model_config = ConfigDict(extra="forbid")

    n: int = Field(1, ge=1, le=128)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=1_000_000)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None

    @model_validator(mode="after")
    def _samples_need_temperature(self) -> "SamplingParams":
        if self.n > 1 and self.temperature == 0:
            raise ValueError(
                f"n={self.n} samples with temperature 0 would all be the same greedy answer; "
                "pass a temperature > 0 (e.g. 0.7)"
            )
        if any(s == "" for s in self.stop):
            raise ValueError("stop strings must not be empty")
        return self


def sampling_params(**values) -> SamplingParams:
    """Validate sampling options, turning a pydantic error into one usage line."""
    from pydantic import ValidationError

    if isinstance(values.get("stop"), str):
        values["stop"] = [values["stop"]]  # the OpenAI API accepts one string too
    try:
        return SamplingParams(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        prefix = f"{where}: " if where else ""
        raise UsageError(f"bad sampling option {prefix}{first['msg'].removeprefix('Value error, ')}") from None


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; returns (text, whether a stop string was found).

    Backends may stop generating at a stop string but still return it (transformers does); cutting here
    gives every backend the OpenAI meaning: the stop string is not part of the completion.
    """
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def check_messages(messages) -> list[dict]:
    """Validate OpenAI-format chat messages; a wrong shape is a usage error naming the message."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise UsageError("chat messages must be a non-empty list of {\"role\", \"content\"} objects")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise UsageError(f"chat message {index} needs a role among {', '.join(ROLES)}; got {message!r:.80}")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise UsageError(f"chat message {index}: content must be a string (or null with tool_calls)")
        calls = message.get("tool_calls") or []
        if calls and (message["role"] != "assistant" or not isinstance(calls, list)):
            raise UsageError(f"chat message {index}: only an assistant message carries a tool_calls list")
        checked.append(message)
    return checked


def check_tools(tools) -> list[dict]:
    """Validate OpenAI-format tool definitions (``{"type": "function", "function": {"name", ...}}``)."""
    if not tools:
        return []
    if not isinstance(tools, (list, tuple)):
        raise UsageError("tools must be a list of {\"type\": \"function\", \"function\": {...}} objects")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise UsageError(f"tool {index} needs {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}")
    return list(tools)


def call_as_dict(call) -> dict:
    """A tool call in either form (a :class:`ToolCall` or the OpenAI wire dict) as the wire dict."""
    if isinstance(call, ToolCall):
        return call.to_message()
    function = call.get("function") or {}
    arguments = function.get("arguments", call.get("arguments", "{}"))
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"id": call.get("id", ""), "type": "function",
            "function": {"name": function.get("name", call.get("name", "")), "arguments": arguments}}


def render_plain(messages: list[dict]) -> str:
    """A chat as plain text for models without a chat template: one ``role: content`` block per message,
    tool calls written as JSON, ending with ``assistant:`` for the model to continue."""
    lines = []
    for message in messages:
        content = message.get("content") or ""
        for call in message.get("tool_calls") or []:
            function = call_as_dict(call)["function"]
            content += ("\n" if content else "") + json.dumps({"tool": function["name"],
                                                              "arguments": function["arguments"]})
        lines.append(f"{message['role']}: {content}")
    lines.append("assistant:")
    return "\n".join(lines)


class LLM(ABC):
    """A text-generation backend.

    Implementations override ``chat`` or ``generate`` (or both: each has a default built on the other).
    They must be safe to call repeatedly; they load their model or open their connection on first use or
    in ``__init__`` and report a missing model or an unreachable server as
    :class:`tlcli.console.errors.UsageError` (one line naming the fix).
    """

    #: The spec string it was built from (``hf:...``, ``openai:...``), for logs and output.
    spec: str = ""
    #: True where the backend returns native tool calls (OpenAI-compatible servers, scripted replies);
    #: elsewhere callers describe the tools in the prompt and parse a strict JSON action from the text.
    supports_tools: bool = False
    #: True for canned answers (``scripted:``): callers must never present them as a model's.
    scripted: bool = False
    #: True where the backend formats a conversation itself (a chat API, a chat template); elsewhere
    #: ``chat`` only writes ``role: content`` lines, so a prompt written to be continued is better sent
    #: to ``generate`` as it is.
    formats_chats: bool = False
    #: How many calls the backend serves at once (a server's parallel requests); callers use as many threads.
    concurrency: int = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        declares_abstract = any(getattr(v, "__isabstractmethod__", False) for v in cls.__dict__.values())
        if cls.chat is LLM.chat and cls.generate is LLM.generate and not declares_abstract:
            # Each default calls the other: a backend with neither would recurse for ever.
            raise TypeError(f"{cls.__name__} must override chat() or generate()")

    def chat(
        self,
        messages: list[dict],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        seed: int | None = None,
        tools: list[dict] | None = None,
    ) -> ChatResult:
        """``n`` replies to the conversation ``messages`` (OpenAI format), with the call's usage.

        ``tools`` (OpenAI format) are offered to backends with ``supports_tools``; others ignore them (the
        caller puts a tool description in the messages instead). The default renders the messages as
        plain ``role: content`` text and calls ``generate``.
        """
        messages = check_messages(messages)
        check_tools(tools)
        generation = self.generate([render_plain(messages)], n, temperature, top_p, max_tokens, stop, seed)[0]
        return result_from_generation(generation, self.spec)

    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> list[Generation]:
        """One :class:`Generation` per prompt, in order, each with exactly ``n`` texts.

        All ``n`` samples of a prompt must come from the backend's batched path (one prefill for a
        local model, the ``n`` parameter of the API for a server), not from ``n`` separate calls. The
        default sends each prompt as one user message through ``chat``.
        """
        results = []
        for prompt in prompts:
            result = self.chat([{"role": "user", "content": prompt}], n, temperature, top_p, max_tokens, stop,
                               seed)
            counts = split_total(result.usage.completion_tokens, len(result.choices))
            results.append(Generation([c.text for c in result.choices], result.usage.prompt_tokens, counts,
                                      [c.finish_reason for c in result.choices]))
        return results

    def chat_stream(
        self,
        messages: list[dict],
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        seed: int | None = None,
        tools: list[dict] | None = None,
    ) -> Iterator[str]:
        """Yield the text of one reply in pieces as they are produced.

        The default yields the whole text at once; backends that can stream (SSE) override it.
        """
        yield self.chat(messages, 1, temperature, top_p, max_tokens, stop, seed, tools).text

    def stream(self, prompt: str, temperature: float = 0.0, top_p: float = 1.0, max_tokens: int = 256,
               stop: list[str] | None = None, seed: int | None = None) -> Iterator[str]:
        """The completion of one plain prompt in pieces (as ``generate`` would prompt the model). The
        default yields the whole text at once; backends that can stream override it."""
        yield self.generate([prompt], 1, temperature, top_p, max_tokens, stop, seed)[0].texts[0]

    def close(self) -> None:
        """Release connections or memory; the default has nothing to release."""

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def result_from_generation(generation: Generation, model: str = "") -> ChatResult:
    """A :class:`ChatResult` (no tool calls) from one prompt's :class:`Generation`."""
    choices = [Choice(text, [], reason) for text, reason in
               zip(generation.texts, generation.finish_reasons or ["stop"] * len(generation.texts))]
    return ChatResult(choices, Usage(generation.prompt_tokens, sum(generation.completion_tokens)), model)


def split_total(total: int, parts: int) -> list[int]:
    """Split a token total over ``parts`` choices as evenly as possible (servers report one total)."""
    if parts == 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def cut_stream_at_stop(pieces: Iterator[str], stop: list[str]) -> Iterator[str]:
    """Pass streamed text through, ending before the first stop string. Text that could be the start of
    a stop string is held back until the next piece shows it is not."""
    if not stop:
        yield from pieces
        return
    hold = max(len(s) for s in stop) - 1
    buffer = ""
    for piece in pieces:
        buffer += piece
        text, stopped = cut_at_stop(buffer, stop)
        if stopped:
            if text:
                yield text
            return
        safe = len(buffer) - hold
        if safe > 0:
            yield buffer[:safe]
            buffer = buffer[safe:]
    if buffer:
        yield buffer
