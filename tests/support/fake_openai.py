"""A fake OpenAI-compatible server on 127.0.0.1 speaking the real wire format: the one fake server of the
tests (tests/llm, tests/hostile, tests/prompting, tests/agents and benchmarks/agents.py import it)."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that hung up (a test's timeout, a stopped run) is expected: say nothing, since the
        traceback socketserver prints would land in whatever stderr a later test is capturing."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class Scripted:
    """A canned HTTP answer sent before the normal ones (429s, 503s, 401s...)."""

    status: int
    headers: dict = field(default_factory=dict)
    body: dict = field(default_factory=lambda: {"error": {"message": "scripted failure"}})


class FakeOpenAI:
    """Speaks enough of the OpenAI protocol for the client: /v1/chat/completions and /v1/completions,
    JSON or server-sent events (content deltas, tool-call deltas in fragments, a usage chunk).
    ``reply(prompt, n, body) -> list[str | {"content", "tool_calls": [{"name", "arguments"}]}]`` makes
    the choices; ``failures`` are answered first, in order: a :class:`Scripted` status, or a callable
    ``(handler, body)`` that writes a raw answer (hostile tests: drips, cut streams, wrong shapes).
    ``max_choices`` imitates servers that ignore n; ``send_usage=False`` servers that report no usage;
    ``latency`` delays every answer (``peak_in_flight`` then counts the requests served at once). Usage
    counts the words of the prompt (a chat's last message) and of the replies."""

    Scripted = Scripted  # tests reach it through the fixture (conftest modules are not importable)
    #: HTTP/1.0 closes each connection; "HTTP/1.1" keeps it open for the client's pool, as real servers do.
    http_version = "HTTP/1.0"

    def __init__(self, reply: Callable[[str, int, dict], list[str]], latency: float = 0.0):
        self.reply = reply
        self.latency = latency
        self.failures: list[Scripted] = []
        self.requests: list[dict] = []
        self.max_choices: int | None = None
        self.send_usage = True
        self.in_flight = self.peak_in_flight = 0
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        # Bounded: even if a test forgets it, the server stops by itself.
        self.watchdog = threading.Timer(120, self.server.shutdown)
        self.watchdog.daemon = True

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.watchdog.cancel()
        self.server.shutdown()
        self.server.server_close()

    @property
    def bodies(self) -> list[dict]:
        return [request["body"] for request in self.requests]

    def spec(self, options: str = "", model: str = "fake-model") -> str:
        """The ``--llm`` spec that reaches this server."""
        return f"openai:{self.base_url}#{model}" + (f"?{options}" if options else "")

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = fake.http_version

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    number = len(fake.requests)  # tool-call ids are unique across requests, as real ones
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    if fake.latency:
                        time.sleep(fake.latency)
                    self._answer(body, number)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, body, number):
                if fake.failures:
                    failure = fake.failures.pop(0)
                    if callable(failure):  # a raw behaviour: it writes whatever it likes on the socket
                        return failure(self, body)
                    return self._json(failure.status, failure.body, failure.headers)
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                chat = self.path.endswith("chat/completions")
                prompt = (body["messages"][-1].get("content") or "") if chat else body["prompt"]
                n = int(body.get("n", 1))
                if fake.max_choices:
                    n = min(n, fake.max_choices)
                items = [_item(r) for r in fake.reply(prompt, n, body)]
                if body.get("stream"):
                    return self._stream(items, chat, body, number)
                choices = []
                for i, (text, calls) in enumerate(items):
                    if chat:
                        message = {"role": "assistant", "content": text if text or not calls else None}
                        if calls:
                            message["tool_calls"] = [
                                {"id": f"call_{number}_{i}_{j}", "type": "function",
                                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                                for j, c in enumerate(calls)]
                        choice = {"message": message}
                    else:
                        choice = {"text": text}
                    choices.append({"index": i, "finish_reason": "tool_calls" if calls else "stop", **choice})
                payload = {"id": "x", "object": "chat.completion" if chat else "text_completion",
                           "choices": choices}
                if fake.send_usage:
                    payload["usage"] = {"prompt_tokens": len(prompt.split()),
                                        "completion_tokens": sum(len(t.split()) for t, _ in items)}
                self._json(200, payload)

            def _json(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, items, chat, body, number):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b": keep-alive comment\n\n")

                def send(choice):
                    self.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())

                for index, (text, calls) in enumerate(items):
                    words = text.split(" ") if text else []
                    for position, word in enumerate(words):
                        piece = word if position == 0 else " " + word
                        send({"index": index, "delta": {"content": piece}} if chat
                             else {"index": index, "text": piece})
                    for j, call in enumerate(calls if chat else []):
                        # The real shape: id, type and name first, then the arguments in fragments.
                        send({"index": index, "delta": {"tool_calls": [
                            {"index": j, "id": f"call_{number}_{index}_{j}", "type": "function",
                             "function": {"name": call["name"], "arguments": ""}}]}})
                        half = len(call["arguments"]) // 2
                        for fragment in (call["arguments"][:half], call["arguments"][half:]):
                            send({"index": index, "delta": {"tool_calls": [
                                {"index": j, "function": {"arguments": fragment}}]}})
                    reason = "tool_calls" if calls and chat else "stop"
                    send({"index": index, "finish_reason": reason, **({"delta": {}} if chat else {"text": ""})})
                if fake.send_usage and (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"prompt_tokens": 3, "completion_tokens": sum(len(t.split()) for t, _ in items)}
                    self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True  # the stream ends with the connection (no length was sent)

        return Handler


def _item(reply) -> tuple[str, list[dict]]:
    """A reply as (text, tool calls with JSON-text arguments)."""
    if isinstance(reply, str):
        return reply, []
    calls = [{"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
              else json.dumps(c["arguments"])} for c in reply.get("tool_calls") or []]
    return reply.get("content") or "", calls


def echo_reply(prompt: str, n: int, body: dict) -> list[str]:
    return [f"sample {i}: The answer is {len(prompt)}." for i in range(n)]
