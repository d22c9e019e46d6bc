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
from tlcli.llm.base import LLM, Generation, cut_at_stop, sampling_params
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

    def _body(self, prompt, n, params, stream: bool) -> dict:
        body: dict = {"model": self.options.model, "n": n, "temperature": params.temperature,
                      "top_p": params.top_p, "max_tokens": params.max_tokens}
        if self.options.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if params.stop:
            body["stop"] = params.stop
        if params.seed is not None:
            body["seed"] = params.seed
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

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

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        params = sampling_params(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        prompts = list(prompts)
        if len(prompts) <= 1 or self.options.concurrency == 1:
            return [self._one(p, params) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._one(p, params), prompts))

    def _one(self, prompt: str, params) -> Generation:
        texts: list[str] = []
        counts: list[int] = []
        reasons: list[str] = []
        prompt_tokens = 0
        # Some servers (Ollama, llama.cpp) ignore n and return one choice; ask again for the rest.
        while len(texts) < params.n:
            missing = params.n - len(texts)
            got = (self._collect_stream(prompt, missing, params) if self.options.stream
                   else self._collect(prompt, missing, params))
            if not got.texts:
                raise JobFailed(f"{self.spec}: the server answered with no choices")
            prompt_tokens = got.prompt_tokens or prompt_tokens
            texts += got.texts[:missing]
            counts += got.completion_tokens[:missing]
            reasons += got.finish_reasons[:missing]
        # Servers apply stop strings themselves, but not all do (and some keep the stop string).
        cut = [cut_at_stop(t, params.stop) for t in texts]
        reasons = ["stop" if hit else r for (_, hit), r in zip(cut, reasons)]
        return Generation([t for t, _ in cut], prompt_tokens, counts, reasons)

    def _collect(self, prompt, n, params) -> Generation:
        response = self._send(self._body(prompt, n, params, stream=False), stream=False)
        try:
            response.read()
            payload = response.json()
        except ValueError:
            raise JobFailed(f"{self.spec}: the server's answer is not JSON: {response.text[:200]!r}") from None
        finally:
            response.close()
        choices = sorted(payload.get("choices") or [], key=lambda c: c.get("index", 0))
        texts = [_choice_text(c, self.options.api) for c in choices]
        usage = payload.get("usage") or {}
        completion_total = int(usage.get("completion_tokens") or 0)
        # The API reports one completion total for all choices; split it evenly as an estimate.
        counts = _split_total(completion_total, len(texts))
        reasons = [c.get("finish_reason") or "stop" for c in choices]
        return Generation(texts, int(usage.get("prompt_tokens") or 0), counts, reasons)

    def _events(self, prompt, n, params) -> Iterator[dict]:
        response = self._send(self._body(prompt, n, params, stream=True), stream=True)
        try:
            yield from _sse_json(response.iter_lines(), self.spec)
        finally:
            response.close()

    def _collect_stream(self, prompt, n, params) -> Generation:
        parts: dict[int, list[str]] = {}
        chunks: dict[int, int] = {}
        reasons: dict[int, str] = {}
        usage: dict = {}
        for event in self._events(prompt, n, params):
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                index = int(choice.get("index", 0))
                piece = _delta_text(choice, self.options.api)
                if piece:
                    parts.setdefault(index, []).append(piece)
                    chunks[index] = chunks.get(index, 0) + 1
                else:
                    parts.setdefault(index, [])
                if choice.get("finish_reason"):
                    reasons[index] = choice["finish_reason"]
        order = sorted(parts)
        texts = ["".join(parts[i]) for i in order]
        total = int(usage.get("completion_tokens") or 0)
        # Without usage, count content chunks: servers send about one token per chunk.
        counts = _split_total(total, len(texts)) if total else [chunks.get(i, 0) for i in order]
        return Generation(texts, int(usage.get("prompt_tokens") or 0), counts,
                          [reasons.get(i, "stop") for i in order])

    def stream(self, prompt, temperature=0.0, top_p=1.0, max_tokens=256, stop=None, seed=None):
        params = sampling_params(n=1, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 stop=list(stop or []), seed=seed)
        for event in self._events(prompt, 1, params):
            for choice in event.get("choices") or []:
                piece = _delta_text(choice, self.options.api)
                if piece:
                    yield piece

    def close(self) -> None:
        self._client.close()


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


def _split_total(total: int, parts: int) -> list[int]:
    if parts == 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


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
