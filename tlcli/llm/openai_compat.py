"""``openai:BASE_URL#MODEL``: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, hosted).

Uses ``/chat/completions`` by default (``api=completions`` for ``/completions``): chat messages, tools
and ``n`` in; choices with text and tool calls, and usage, out (JSON, or server-sent events with
``stream=true``, tool calls arriving in fragments).

Failure handling (see :mod:`tlcli.llm.transport`): 429/5xx, timeouts, dropped connections, stalled or
cut streams are retried with exponential backoff and jitter; ``Retry-After`` is honoured up to
``max_backoff`` (longer waits are capped, and said on stderr); an answer must arrive within ``timeout``
(a stream: an event at least every ``timeout`` seconds), so a dripping server cannot hang a run. An
unreachable server is a usage error (exit 2): the fix is on the user's side.

Keys: ``api_key_env`` if given, else ``TLCLI_LLM_API_KEY``, else ``OPENAI_API_KEY``. A key goes only to a
host the user chose: one named on the command line or in ``$TLCLI_LLM``, or the host of
``OPENAI_BASE_URL``/``TLCLI_LLM_BASE_URL`` (``api.openai.com`` for ``OPENAI_API_KEY``). A config file that
points a key at another host is refused with a message. Keys are masked in every message.
"""

from __future__ import annotations

import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator
from urllib.parse import urlsplit

from tlcli.console.errors import JobFailed, UsageError
from tlcli.llm.base import (
    LLM, ChatResult, Choice, Generation, ToolCall, Usage, call_as_dict, check_messages, check_tools, cut_at_stop,
    cut_stream_at_stop, render_plain, sampling_params, split_total,
)
from tlcli.llm.spec import COMMAND_LINE, ENVIRONMENT, OpenAISpec
from tlcli.llm.transport import OutOfTime, Retryable, StreamCut, parse_retry_after, read_body, sse_events, time_left
from tlcli.console.secrets import redact, register_secret

KEY_ENV_VARS = ("TLCLI_LLM_API_KEY", "OPENAI_API_KEY")
BASE_URL_ENV_VARS = ("TLCLI_LLM_BASE_URL", "OPENAI_BASE_URL")
OPENAI_API = "https://api.openai.com/v1"
RETRY_STATUSES = {429, 500, 502, 503, 504}
SAY_WAITS_FROM = 2.0  # seconds: a longer wait before a retry is said on stderr
_parse_retry_after = parse_retry_after  # the name tests import


class OpenAILLM(LLM):
    """Talks to ``BASE_URL`` with one pooled httpx client. ``sleep`` is injectable so tests can check the
    backoff without waiting for it."""

    def __init__(self, spec: OpenAISpec, sleep: Callable[[float], None] = time.sleep, transport=None,
                 say: Callable[[str], None] | None = None):
        import httpx

        self.spec = redact(f"openai:{spec.base_url}#{spec.model}")
        self.options = spec
        self._sleep = sleep
        self._say = say or _info
        headers = {"Accept": "application/json"}
        key = self._api_key()
        if key:
            register_secret(key)
            headers["Authorization"] = f"Bearer {key}"
        # Each read is bounded by httpx; the whole answer by transport.read_body / sse_events.
        timeout = httpx.Timeout(spec.timeout, connect=spec.connect_timeout)
        self._client = httpx.Client(base_url=spec.base_url, headers=headers, timeout=timeout,
                                    transport=transport, follow_redirects=False)
        #: HTTP requests sent, retries included (tests read it).
        self.requests_sent = 0
        self._warned: set = set()  # odd usage counts already said on stderr

    @property
    def formats_chats(self) -> bool:
        return self.options.api == "chat"

    @property
    def concurrency(self) -> int:
        return self.options.concurrency

    def _api_key(self) -> str | None:
        names = (self.options.api_key_env,) if self.options.api_key_env else KEY_ENV_VARS
        if self.options.api_key_env and not os.environ.get(self.options.api_key_env):
            raise UsageError(f"{self.spec}: api_key_env={self.options.api_key_env} but that environment "
                             "variable is not set; export it or drop the option")
        name = next((n for n in names if os.environ.get(n)), None)
        if name is None:
            return None
        source = self.options.source
        # A host typed by the user (flag or environment) is their choice; one read from a file is not.
        if source not in (COMMAND_LINE, ENVIRONMENT) and not self._host_configured_for(name):
            host = _origin(self.options.base_url)[1] or self.options.base_url
            raise UsageError(
                f"{source} points openai: at {host}, but the key in ${name} is sent only to a host you chose: "
                f"pass --llm openai:... on the command line, set OPENAI_BASE_URL to that server, "
                f"or unset {name} for this run"
            )
        return os.environ[name]

    def _host_configured_for(self, key_name: str) -> bool:
        """Whether the user configured this server for keys outside the spec: OPENAI_BASE_URL or
        TLCLI_LLM_BASE_URL name it, or it is OpenAI's own API and the key is OPENAI_API_KEY."""
        mine = _origin(self.options.base_url)
        configured = [os.environ[v] for v in BASE_URL_ENV_VARS if os.environ.get(v)]
        if key_name == "OPENAI_API_KEY":
            configured.append(OPENAI_API)
        return any(_origin(url) == mine for url in configured)

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

    def _open(self, body: dict):
        """POST once and return the open streaming response (status < 400), or raise: Retryable for a
        status or network failure another try may fix, UsageError/JobFailed for the rest."""
        import httpx

        seconds = self._seconds()
        self.requests_sent += 1
        try:
            request = self._client.build_request("POST", self._endpoint(), json=body, timeout=httpx.Timeout(
                seconds, connect=min(self.options.connect_timeout, seconds)))
            response = self._client.send(request, stream=True)
        except httpx.ConnectError as error:
            raise UsageError(redact(f"cannot reach {self.options.base_url} ({_reason(error)}); start the server "
                                    "or fix the URL in --llm openai:BASE_URL#MODEL")) from None
        except httpx.TimeoutException as error:
            raise Retryable("no answer", type(error).__name__, "raise timeout= in the spec or check the server") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
            raise Retryable("the connection dropped", type(error).__name__) from None
        if response.status_code < 300:
            return response
        if response.status_code in RETRY_STATUSES:
            try:
                detail = _error_detail(response, read_body(response, self._seconds()))
            except Retryable:
                detail = response.reason_phrase
            finally:
                response.close()
            raise Retryable(f"server still answers {response.status_code}", detail,
                            retry_after=response.headers.get("Retry-After"))
        self._raise_for(response)

    def _retrying(self, attempt: Callable[[], object]):
        """``attempt()`` until it succeeds or ``max_retries`` retries have failed."""
        tries = 0
        while True:
            try:
                return attempt()
            except Retryable as failure:
                tries += 1
                if tries > self.options.max_retries:
                    raise failure.final(self.spec, tries) from None
                self._wait(tries - 1, failure)

    def _seconds(self) -> float:
        """How long one request or read may take: ``timeout``, or less when a caller's time limit is nearer."""
        left = time_left()
        if left is None:
            return self.options.timeout
        if left <= 0:
            raise OutOfTime(f"{self.spec}: the caller's time limit ran out")
        return min(self.options.timeout, left)

    def _wait(self, attempt: int, failure: Retryable) -> None:
        delay = self._delay(attempt, failure.retry_after)
        left = time_left()
        if left is not None and delay >= left:
            raise OutOfTime(f"{self.spec}: {failure.reason}, and no time is left for another try")
        if delay >= SAY_WAITS_FROM:
            self._say(f"{self.spec}: {failure.reason}; retry {attempt + 1} of {self.options.max_retries} "
                      f"in {delay:.0f} s")
        self._sleep(delay)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        told = parse_retry_after(retry_after)
        if told is not None:
            # The server knows when it will have room, but a wait of minutes looks like a hang: cap it.
            if told > self.options.max_backoff:
                self._say(f"{self.spec}: the server asked to wait {told:.0f} s (Retry-After); waiting "
                          f"{self.options.max_backoff:.0f} s instead (max_backoff in the spec)")
                return self.options.max_backoff
            return told
        # Full jitter keeps many clients that failed together from retrying together.
        cap = min(self.options.max_backoff, self.options.backoff * (2 ** attempt))
        return random.uniform(cap / 2, cap) if cap > 0 else 0.0

    def _raise_for(self, response):
        try:
            detail = _error_detail(response, read_body(response, self.options.timeout))
        except Retryable:
            detail = response.reason_phrase
        finally:
            response.close()
        status = response.status_code
        if status in (401, 403):
            raise UsageError(f"{self.spec}: the server refused the request ({status}: {detail}); set "
                             "TLCLI_LLM_API_KEY (or OPENAI_API_KEY, or api_key_env=NAME in the spec)")
        if status == 404:
            raise UsageError(f"{self.spec}: {self._endpoint()} or model {self.options.model!r} not found "
                             f"({detail}); check the base URL (usually ends in /v1) and the model name")
        if 300 <= status < 400:
            raise UsageError(f"{self.spec}: the server redirects ({status}) and tlcli does not follow redirects "
                             "(a key must not travel to another host); put the final URL in the spec")
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

        if len(prompts) <= 1 or self.concurrency == 1:
            return [one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
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
        return self._retrying(lambda: self._collect_once(body))

    def _collect_once(self, body: dict) -> tuple[list[Choice], Usage | None]:
        response = self._open(body)
        try:
            raw = read_body(response, self._seconds())
        finally:
            response.close()
        try:
            payload = json.loads(raw)
        except ValueError:
            raise JobFailed(redact(f"{self.spec}: the server's answer is not JSON: "
                                   f"{raw[:200].decode('utf-8', 'replace')!r}")) from None
        try:
            if isinstance(payload, dict) and "error" in payload and "choices" not in payload:
                raise JobFailed(redact(f"{self.spec}: the server answered with an error: {_error_text(payload)}"))
            choices = sorted(payload["choices"], key=lambda c: int(c.get("index", 0)))
            parsed = [_parse_choice(c, self.options.api) for c in choices]
            return parsed, _parse_usage(payload.get("usage"), self._warned)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise JobFailed(redact(f"{self.spec}: the server's answer is JSON but not an OpenAI "
                                   f"{'chat completion' if self.options.api == 'chat' else 'completion'}: "
                                   f"{json.dumps(payload)[:200]}")) from None

    def _events(self, body: dict) -> Iterator[dict]:
        response = self._open(body)
        try:
            yield from sse_events(response, self._seconds(), self.spec)
        finally:
            response.close()

    def _collect_stream(self, body: dict) -> tuple[list[Choice], Usage | None]:
        return self._retrying(lambda: self._collect_stream_once(body))

    def _collect_stream_once(self, body: dict) -> tuple[list[Choice], Usage | None]:
        builders: dict[int, _ChoiceBuilder] = {}
        usage = None
        limit = _event_limit(body)
        try:
            for count, event in enumerate(self._events(body)):
                self._seconds()  # a stream that keeps coming still ends at the caller's time limit
                if count > limit:
                    raise JobFailed(f"{self.spec}: the server streamed over {limit} events for max_tokens="
                                    f"{body['max_tokens']} x n={body['n']}; it does not honour max_tokens")
                try:
                    usage = _parse_usage(event.get("usage"), self._warned) or usage
                    for choice in event.get("choices") or []:
                        builders.setdefault(int(choice.get("index", 0)), _ChoiceBuilder()).add(choice,
                                                                                              self.options.api)
                except (KeyError, TypeError, AttributeError, ValueError):
                    raise JobFailed(redact(f"{self.spec}: a streamed event is JSON but not an OpenAI chunk: "
                                           f"{json.dumps(event)[:200]}")) from None
        except StreamCut:
            # A server that closes without [DONE] after every choice finished has said everything.
            if not builders or not all(b.finish_reason for b in builders.values()):
                raise
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
            yield from self.chat_stream([{"role": "user", "content": prompt}], temperature, top_p, max_tokens,
                                        stop, seed)
            return
        params = sampling_params(n=1, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        yield from cut_stream_at_stop(self._stream_pieces(self._body({"prompt": prompt}, 1, params, True)),
                                      params.stop)

    def _stream_pieces(self, body: dict) -> Iterator[str]:
        """Text pieces as they arrive. A failure before the first piece is retried; after it, the
        caller has already shown part of a reply that a new sample would not continue, so it ends the
        stream with one line."""
        tries = 0
        limit = _event_limit(body)
        while True:
            shown = 0
            finished = False
            try:
                for count, event in enumerate(self._events(body)):
                    if count > limit:
                        raise JobFailed(f"{self.spec}: the server streamed over {limit} events for "
                                        f"max_tokens={body['max_tokens']}; it does not honour max_tokens")
                    try:
                        pieces = [(_delta_text(c, self.options.api), bool(c.get("finish_reason")))
                                  for c in event.get("choices") or []]
                    except (KeyError, TypeError, AttributeError, ValueError):
                        raise JobFailed(redact(f"{self.spec}: a streamed event is JSON but not an OpenAI "
                                               f"chunk: {json.dumps(event)[:200]}")) from None
                    for piece, ends in pieces:
                        finished = finished or ends
                        if piece:
                            shown += 1
                            yield piece
                return
            except StreamCut as failure:
                if finished:
                    return
                if shown:
                    raise JobFailed(f"{self.spec}: {failure.reason} after {shown} pieces of the reply; "
                                    "the reply above is incomplete") from None
                failure_now = failure
            except Retryable as failure:
                if shown:
                    raise JobFailed(f"{self.spec}: {failure.reason} after {shown} pieces of the reply; "
                                    "the reply above is incomplete") from None
                failure_now = failure
            tries += 1
            if tries > self.options.max_retries:
                raise failure_now.final(self.spec, tries) from None
            self._wait(tries - 1, failure_now)

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
    text = _content_text(message.get("content"))
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


MAX_REPORTED_TOKENS = 10**9  # more than any context: a count above it is not a count


def _parse_usage(usage, warned: set | None = None) -> Usage | None:
    if not usage or not isinstance(usage, dict):
        return None
    warned = set() if warned is None else warned
    return Usage(_token_count(usage, "prompt_tokens", warned), _token_count(usage, "completion_tokens", warned))


def _token_count(usage: dict, key: str, warned: set) -> int:
    """A reported token count, clamped to [0, MAX_REPORTED_TOKENS] with a warning (once per kind): a
    negative count would let a token budget run backwards, a huge one end a run at once."""
    value = usage.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"usage.{key} is not a number")
    clamped = int(min(max(value, 0), MAX_REPORTED_TOKENS))
    if clamped != value:
        why = "negative" if value < 0 else "not a whole number" if value <= MAX_REPORTED_TOKENS else "too large"
        if (key, why) not in warned:
            warned.add((key, why))
            from tlcli.console.output import warn

            warn(f"the server reported usage.{key} = {str(value)[:24]} ({why}); counted as {clamped}")
    return clamped


def _estimate_usage(core: dict, choices: list[Choice]) -> Usage:
    """A server that reports no usage still spends tokens: estimate them from whitespace words, so a
    token budget still holds."""
    prompt = core.get("prompt") or " ".join(m.get("content") or "" for m in core.get("messages") or [])
    completion = sum(len(c.text.split()) + sum(len(t.arguments.split()) for t in c.tool_calls) for c in choices)
    return Usage(len(prompt.split()), completion)


def _apply_stop(choice: Choice, stop: list[str]) -> Choice:
    text, hit = cut_at_stop(choice.text, stop)
    return Choice(text, choice.tool_calls, "stop" if hit else choice.finish_reason) if hit else choice


def _content_text(content) -> str:
    """Message content as text: a string, or a list of parts of which the text ones count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if part.get("type") == "text")
    raise TypeError("content")


def _delta_text(choice: dict, api: str) -> str:
    if api == "chat":
        return _content_text((choice.get("delta") or {}).get("content"))
    text = choice.get("text") or ""
    if not isinstance(text, str):
        raise TypeError("text")
    return text


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _error_detail(response, raw: bytes) -> str:
    """The server's own words about an error status, one line, keys masked."""
    try:
        return _error_text(json.loads(raw))
    except ValueError:
        text = " ".join(raw[:200].decode("utf-8", "replace").split())
        return redact(text or response.reason_phrase)


def _error_text(payload) -> str:
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    message = error.get("message", error) if isinstance(error, dict) else error
    return redact(" ".join(str(message).split())[:200])


def _event_limit(body: dict) -> int:
    """More events than this means the server ignores max_tokens (one token per event, plus slack for
    role, tool-call headers, finish and usage events)."""
    return body["n"] * (body["max_tokens"] * 2 + 64) + 64


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in, for comparing servers."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return ("", "", None)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def _info(message: str) -> None:
    from tlcli.console.output import info

    info(message)
