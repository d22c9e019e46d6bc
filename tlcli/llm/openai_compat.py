"""``openai:BASE_URL#MODEL``: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, hosted).

Uses ``/chat/completions`` by default (``api=completions`` for ``/completions``). Retries 429 and 5xx
with exponential backoff, honouring ``Retry-After``; an unreachable server is a usage error (exit 2),
because the fix is on the user's side: start the server or correct the URL.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

from tlcli.errors import JobFailed, UsageError
from tlcli.llm.base import (
    LLM, ChatResult, Choice, Generation, ToolCall, Usage, call_as_dict, check_messages, check_tools, cut_at_stop,
    cut_stream_at_stop, render_plain, sampling_params, split_total,
)
from tlcli.llm.spec import OpenAISpec

KEY_ENV_VARS = ("TLCLI_LLM_API_KEY", "OPENAI_API_KEY")
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 300.0  # seconds


class OpenAILLM(LLM):
    """Talks to ``BASE_URL`` with one pooled httpx client. ``sleep`` is injectable so tests can check the
    backoff without waiting for it."""

    def __init__(self, spec: OpenAISpec, sleep: Callable[[float], None] = time.sleep, transport=None):
        import httpx

        self.spec = f"openai:{spec.base_url}#{spec.model}"
        self.options = spec
        self._sleep = sleep
        headers = {"Accept": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(spec.timeout, connect=spec.connect_timeout)
        self._client = httpx.Client(base_url=spec.base_url, headers=headers, timeout=timeout,
                                    transport=transport)
        #: HTTP requests sent, retries included (tests read it).
        self.requests_sent = 0

    def _api_key(self) -> str | None:
        names = (self.options.api_key_env,) if self.options.api_key_env else KEY_ENV_VARS
        if self.options.api_key_env and not os.environ.get(self.options.api_key_env):
            raise UsageError(f"{self.spec}: api_key_env={self.options.api_key_env} but that environment "
                             "variable is not set; export it or drop the option")
        return next((os.environ[n] for n in names if os.environ.get(n)), None)

    # -- requests -------------------------------------------------------------------------------

    def _endpoint(self) -> str:
        return "/chat/completions" if self.options.api == "chat" else "/completions"

    def _body(self, core: dict, n: int, params, stream: bool) -> dict:
        """The request: ``core`` holds ``messages`` (and ``tools``) for /chat/completions or ``prompt``."""
        body: dict = {"model": self.options.model, **core, "n": n, "temperature": params.temperature,
                      "top_p": params.top_p, "max_tokens": params.max_tokens}
        if params.stop:
            body["stop"] = params.stop
        if params.seed is not None:
            body["seed"] = params.seed
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _core(self, messages: list[dict], tools: list[dict] | None) -> dict:
        if self.options.api != "chat":
            return {"prompt": render_plain(messages)}  # /completions knows no roles and no tools
        core: dict = {"messages": [_wire_message(m) for m in messages]}
        if tools:
            core["tools"] = tools
        return core

    def _send(self, body: dict, stream: bool):
        """POST with retries; returns an open response (caller closes it)."""
        import httpx

        attempt = 0
        while True:
            self.requests_sent += 1
            try:
                request = self._client.build_request("POST", self._endpoint(), json=body)
                response = self._client.send(request, stream=stream)
            except httpx.ConnectError as error:
                raise UsageError(f"cannot reach {self.options.base_url} ({_reason(error)}); start the server "
                                 "or fix the URL in --llm openai:BASE_URL#MODEL") from None
            except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as error:
                if attempt >= self.options.max_retries:
                    raise JobFailed(f"{self.spec}: no answer after {attempt + 1} tries ({type(error).__name__}); "
                                    "raise timeout= in the spec or check the server") from None
                self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            if response.status_code in RETRY_STATUSES and attempt < self.options.max_retries:
                delay = self._delay(attempt, response.headers.get("Retry-After"))
                response.close()
                self._sleep(delay)
                attempt += 1
                continue
            self._raise_for(response, attempt)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        told = _parse_retry_after(retry_after)
        if told is not None:
            # The server knows when it will have room; only an absurd wait is capped.
            return min(told, MAX_RETRY_AFTER)
        # Full jitter keeps many clients that failed together from retrying together.
        cap = min(self.options.max_backoff, self.options.backoff * (2 ** attempt))
        return random.uniform(cap / 2, cap) if cap > 0 else 0.0

    def _raise_for(self, response, attempt: int):
        response.read()
        detail = _error_detail(response)
        status = response.status_code
        response.close()
        if status in (401, 403):
            raise UsageError(f"{self.spec}: the server refused the request ({status}: {detail}); set "
                             "TLCLI_LLM_API_KEY (or OPENAI_API_KEY, or api_key_env=NAME in the spec)")
        if status == 404:
            raise UsageError(f"{self.spec}: {self._endpoint()} or model {self.options.model!r} not found "
                             f"({detail}); check the base URL (usually ends in /v1) and the model name")
        if status in RETRY_STATUSES:
            raise JobFailed(f"{self.spec}: server still answers {status} after {attempt + 1} tries ({detail})")
        raise UsageError(f"{self.spec}: server rejected the request ({status}: {detail})")

    # -- the interface --------------------------------------------------------------------------

    @property
    def supports_tools(self) -> bool:
        return self.options.api == "chat"

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        prompts = list(prompts)

        def one(prompt: str) -> Generation:
            core = ({"messages": [{"role": "user", "content": prompt}]} if self.options.api == "chat"
                    else {"prompt": prompt})
            choices, usage = self._sample(core, params, self.options.stream)
            return Generation([c.text for c in choices], usage.prompt_tokens,
                              split_total(usage.completion_tokens, len(choices)),
                              [c.finish_reason for c in choices])

        if len(prompts) <= 1 or self.options.concurrency == 1:
            return [one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(prompts))) as pool:
            return list(pool.map(one, prompts))

    def chat(self, messages, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None, tools=None):
        messages = check_messages(messages)
        tools = check_tools(tools)
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        choices, usage = self._sample(self._core(messages, tools), params, self.options.stream)
        return ChatResult(choices, usage, self.spec)

    def _sample(self, core: dict, params, stream: bool) -> tuple[list[Choice], Usage]:
        """``params.n`` choices for one request body, and what they cost."""
        choices: list[Choice] = []
        usage = Usage()
        # Some servers (Ollama, llama.cpp) ignore n and return one choice; ask again for the rest.
        while len(choices) < params.n:
            missing = params.n - len(choices)
            body = self._body(core, missing, params, stream)
            got, spent = self._collect_stream(body) if stream else self._collect(body)
            if not got:
                raise JobFailed(f"{self.spec}: the server answered with no choices")
            choices += got[:missing]
            usage = usage + (spent or _estimate_usage(core, got))
        # Servers apply stop strings themselves, but not all do (and some keep the stop string).
        return [_apply_stop(c, params.stop) for c in choices], usage

    def _collect(self, body: dict) -> tuple[list[Choice], Usage | None]:
        response = self._send(body, stream=False)
        try:
            response.read()
            payload = response.json()
        except ValueError:
            raise JobFailed(f"{self.spec}: the server's answer is not JSON: {response.text[:200]!r}") from None
        finally:
            response.close()
        try:
            choices = sorted(payload["choices"], key=lambda c: int(c.get("index", 0)))
            parsed = [_parse_choice(c, self.options.api) for c in choices]
            return parsed, _parse_usage(payload.get("usage"))
        except (KeyError, TypeError, AttributeError, ValueError):
            raise JobFailed(f"{self.spec}: the server's answer is JSON but not an OpenAI "
                            f"{'chat completion' if self.options.api == 'chat' else 'completion'}: "
                            f"{json.dumps(payload)[:200]}") from None

    def _events(self, body: dict) -> Iterator[dict]:
        response = self._send(body, stream=True)
        try:
            yield from _sse_json(response.iter_lines(), self.spec)
        finally:
            response.close()

    def _collect_stream(self, body: dict) -> tuple[list[Choice], Usage | None]:
        builders: dict[int, _ChoiceBuilder] = {}
        usage = None
        for event in self._events(body):
            try:
                usage = _parse_usage(event.get("usage")) or usage
                for choice in event.get("choices") or []:
                    builders.setdefault(int(choice.get("index", 0)), _ChoiceBuilder()).add(choice, self.options.api)
            except (KeyError, TypeError, AttributeError, ValueError):
                raise JobFailed(f"{self.spec}: a streamed event is JSON but not an OpenAI chunk: "
                                f"{json.dumps(event)[:200]}") from None
        choices = [builders[i].build() for i in sorted(builders)]
        if usage is None and choices:
            # Without usage, count content chunks: servers send about one token per chunk.
            usage = Usage(_estimate_usage(body, []).prompt_tokens, sum(b.chunks for b in builders.values()))
        return choices, usage

    def chat_stream(self, messages, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None, tools=None):
        messages = check_messages(messages)
        params = sampling_params(n=1, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        body = self._body(self._core(messages, check_tools(tools)), 1, params, stream=True)
        yield from cut_stream_at_stop(self._stream_pieces(body), params.stop)

    def stream(self, prompt, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        if self.options.api == "chat":
            yield from super().stream(prompt, temperature, top_p, max_tokens, stop, seed)
            return
        params = sampling_params(n=1, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        yield from cut_stream_at_stop(self._stream_pieces(self._body({"prompt": prompt}, 1, params, True)),
                                      params.stop)

    def _stream_pieces(self, body: dict) -> Iterator[str]:
        for event in self._events(body):
            for choice in event.get("choices") or []:
                piece = _delta_text(choice, self.options.api) if isinstance(choice, dict) else ""
                if piece:
                    yield piece

    def close(self) -> None:
        self._client.close()


class _ChoiceBuilder:
    """Accumulates one choice's streamed deltas: content pieces and tool calls sent in fragments
    (the first fragment of a call brings its id and name, later ones pieces of its arguments)."""

    def __init__(self):
        self.parts: list[str] = []
        self.calls: dict[int, dict] = {}
        self.finish_reason: str | None = None
        self.chunks = 0

    def add(self, choice: dict, api: str) -> None:
        piece = _delta_text(choice, api)
        if piece:
            self.parts.append(piece)
            self.chunks += 1
        fragments = (choice.get("delta") or {}).get("tool_calls") if api == "chat" else None
        for fragment in fragments or []:
            call = self.calls.setdefault(int(fragment.get("index", len(self.calls))),
                                         {"id": "", "name": "", "arguments": []})
            function = fragment.get("function") or {}
            call["id"] = fragment.get("id") or call["id"]
            call["name"] += function.get("name") or ""
            if function.get("arguments"):
                call["arguments"].append(function["arguments"])
                self.chunks += 1
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def build(self) -> Choice:
        calls = [ToolCall(c["id"] or f"call_{i}", c["name"], "".join(c["arguments"]) or "{}")
                 for i, c in sorted(self.calls.items())]
        return Choice("".join(self.parts), calls, self.finish_reason or ("tool_calls" if calls else "stop"))


def _wire_message(message: dict) -> dict:
    """A chat message as the server expects it: tool calls in the wire form, arguments as JSON text."""
    out = dict(message)
    if message.get("tool_calls"):
        out["tool_calls"] = [call_as_dict(c) for c in message["tool_calls"]]
        out["content"] = message.get("content") or None
    return out


def _parse_choice(choice: dict, api: str) -> Choice:
    if api != "chat":
        text = choice.get("text") or ""
        if not isinstance(text, str):
            raise TypeError("text")
        return Choice(text, [], choice.get("finish_reason") or "stop")
    message = choice["message"]
    text = message.get("content") or ""
    if not isinstance(text, str):
        raise TypeError("content")
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        arguments = function.get("arguments", "{}")
        calls.append(ToolCall(str(call.get("id") or f"call_{i}"), str(function["name"]),
                              arguments if isinstance(arguments, str) else json.dumps(arguments)))
    legacy = message.get("function_call")  # the pre-tools form some servers still send
    if legacy and not calls:
        arguments = legacy.get("arguments", "{}")
        calls.append(ToolCall("call_0", str(legacy["name"]),
                              arguments if isinstance(arguments, str) else json.dumps(arguments)))
    return Choice(text, calls, choice.get("finish_reason") or ("tool_calls" if calls else "stop"))


def _parse_usage(usage) -> Usage | None:
    if not usage:
        return None
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _estimate_usage(core: dict, choices: list[Choice]) -> Usage:
    """A server that reports no usage still spends tokens: estimate them from whitespace words, so a
    token budget still holds."""
    prompt = core.get("prompt") or " ".join(m.get("content") or "" for m in core.get("messages") or [])
    completion = sum(len(c.text.split()) + sum(len(t.arguments.split()) for t in c.tool_calls) for c in choices)
    return Usage(len(prompt.split()), completion)


def _apply_stop(choice: Choice, stop: list[str]) -> Choice:
    text, hit = cut_at_stop(choice.text, stop)
    return Choice(text, choice.tool_calls, "stop" if hit else choice.finish_reason) if hit else choice


def _sse_json(lines: Iterator[str], spec: str) -> Iterator[dict]:
    """Server-sent events: ``data: {...}`` lines until ``data: [DONE]``; comments and other fields are
    skipped, and an event's data may span several ``data:`` lines."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line.strip() or not data:
            continue  # ":" comments, "event:"/"id:" fields, keep-alive blank lines
        text = "\n".join(data)
        data = []
        if text.strip() == "[DONE]":
            return
        yield _decode_event(text, spec)
    if data and "\n".join(data).strip() != "[DONE]":
        yield _decode_event("\n".join(data), spec)


def _decode_event(text: str, spec: str) -> dict:
    try:
        event = json.loads(text)
    except ValueError:
        raise JobFailed(f"{spec}: a streamed event is not JSON: {text[:200]!r}") from None
    if isinstance(event, dict) and "error" in event:
        raise JobFailed(f"{spec}: the server reported an error mid-stream: {event['error']}")
    return event


def _choice_text(choice: dict, api: str) -> str:
    if api == "chat":
        return (choice.get("message") or {}).get("content") or ""
    return choice.get("text") or ""


def _delta_text(choice: dict, api: str) -> str:
    if api == "chat":
        return (choice.get("delta") or {}).get("content") or ""
    return choice.get("text") or ""


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_detail(response) -> str:
    try:
        payload = response.json()
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        message = error.get("message") if isinstance(error, dict) else error
        return str(message)[:200]
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
