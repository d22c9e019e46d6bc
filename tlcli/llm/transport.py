"""HTTP for the ``openai:`` backend: retries with capped waits, and answers read under a deadline.

Why not just httpx's timeouts: they bound each socket read, so a server that drips one byte a second
never trips them. Here every answer is read in chunks against a clock:

- a JSON answer must arrive whole within ``timeout`` seconds of the request (and under ``MAX_BODY``);
- a stream must deliver a complete event at least every ``timeout`` seconds (a long generation is
  fine, a stalled or dripping one is not) and must end with ``[DONE]`` (else it was cut).

A failure worth another try raises :class:`Retryable`; the caller's retry loop decides.

A caller with a budget of its own (``agents solve --timeout``) wraps its calls in :func:`time_limit`: each
request, each read and each wait before a retry is then bounded by the time left, and a call that runs
out raises :class:`OutOfTime`.
"""

from __future__ import annotations

import email.utils
import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from tlcli.console.errors import JobFailed
from tlcli.console.secrets import redact

MAX_BODY = 32 * 1024 * 1024  # bytes; no completion is this large
MAX_EVENT = 4 * 1024 * 1024  # bytes in one server-sent event


class Retryable(Exception):
    """One try failed in a way another try may fix. ``reason`` completes "...after N tries"."""

    def __init__(self, reason: str, detail: str = "", hint: str = "", retry_after: str | None = None):
        super().__init__(reason)
        self.reason, self.detail, self.hint, self.retry_after = reason, detail, hint, retry_after

    def final(self, spec: str, tries: int) -> JobFailed:
        detail = f" ({self.detail})" if self.detail else ""
        hint = f"; {self.hint}" if self.hint else ""
        return JobFailed(redact(f"{spec}: {self.reason} after {tries} tries{detail}{hint}"))


class OutOfTime(JobFailed):
    """The caller's :func:`time_limit` ran out during a model call (another try would not fit in it)."""


_deadline: ContextVar[float | None] = ContextVar("tlcli_llm_deadline", default=None)


@contextmanager
def time_limit(seconds: float | None):
    """Model calls made inside (this thread, or a context copied from it) end within ``seconds``, the
    request in flight and its retries included; None: no limit."""
    if seconds is None:
        yield
        return
    until = time.monotonic() + max(0.0, seconds)
    current = _deadline.get()
    token = _deadline.set(until if current is None else min(current, until))
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left() -> float | None:
    """Seconds left under the innermost :func:`time_limit`, or None when there is none."""
    until = _deadline.get()
    return None if until is None else until - time.monotonic()


class StreamCut(Retryable):
    """The stream ended (or the connection dropped) before ``[DONE]``."""


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.reset()

    def reset(self) -> None:
        self.until = time.monotonic() + self.seconds

    def expired(self) -> bool:
        return time.monotonic() > self.until


def read_body(response, seconds: float) -> bytes:
    """The whole body, or :class:`Retryable` when it takes longer than ``seconds`` in total."""
    import httpx

    deadline = Deadline(seconds)
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY:
                raise JobFailed(f"the server's answer is over {MAX_BODY // 2**20} MiB; not a completion")
            if deadline.expired():
                raise Retryable(f"the answer did not arrive within timeout={seconds:g} s", f"{size} bytes came",
                                "raise timeout= in the spec or check the server")
    except httpx.TimeoutException as error:
        raise Retryable("no answer", type(error).__name__, "raise timeout= in the spec or check the server") from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as error:
        raise Retryable("the connection dropped mid-answer", type(error).__name__) from None
    return b"".join(chunks)


def sse_events(response, idle_seconds: float, spec: str) -> Iterator[dict]:
    """Server-sent events as JSON objects: ``data: {...}`` until ``data: [DONE]``; comments and other
    fields are skipped, and an event's data may span several ``data:`` lines. Raises :class:`Retryable`
    when no complete event comes for ``idle_seconds`` and :class:`StreamCut` when the stream ends
    without ``[DONE]``."""
    import httpx

    deadline = Deadline(idle_seconds)
    stalled = Retryable(f"the stream stalled (no event for {idle_seconds:g} s)",
                        hint="raise timeout= in the spec or check the server")
    data: list[str] = []
    buffer = b""
    try:
        for chunk in response.iter_bytes():
            buffer += chunk
            while True:
                line, newline, rest = buffer.partition(b"\n")
                if not newline:
                    break
                buffer = rest
                text = line.rstrip(b"\r").decode("utf-8", "replace")
                if text.startswith("data:"):
                    data.append(text[5:].removeprefix(" "))
                    continue
                if text.strip() or not data:
                    continue  # ":" comments, "event:"/"id:" fields, keep-alive blank lines
                payload = "\n".join(data)
                data = []
                if payload.strip() == "[DONE]":
                    return
                deadline.reset()
                yield decode_event(payload, spec)
            if len(buffer) > MAX_EVENT or sum(map(len, data)) > MAX_EVENT:
                raise JobFailed(f"{spec}: a streamed event is over {MAX_EVENT // 2**20} MiB; not a completion chunk")
            if deadline.expired():
                raise stalled
    except httpx.TimeoutException:
        raise stalled from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as error:
        raise StreamCut("the stream was cut before its end", type(error).__name__) from None
    if data and "\n".join(data).strip() == "[DONE]":
        return
    if data:
        yield decode_event("\n".join(data), spec)
    raise StreamCut("the stream ended before [DONE]")


def decode_event(text: str, spec: str) -> dict:
    try:
        event = json.loads(text)
    except ValueError:
        raise JobFailed(redact(f"{spec}: a streamed event is not JSON: {text[:200]!r}")) from None
    if not isinstance(event, dict):
        raise JobFailed(redact(f"{spec}: a streamed event is JSON but not an object: {text[:200]}"))
    if "error" in event:
        raise JobFailed(redact(f"{spec}: the server reported an error mid-stream: {str(event['error'])[:200]}"))
    return event


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
