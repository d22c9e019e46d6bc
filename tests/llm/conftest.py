"""Fixtures for the LLM backends: a tiny random GPT-2 on disk, and an OpenAI-protocol server on loopback."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tlcli.llm.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llm(tiny_model_dir):
    from tlcli.llm import resolve_llm

    return resolve_llm(f"hf:{tiny_model_dir}")


@dataclass
class Scripted:
    """A canned HTTP answer sent before the normal ones (429s, 503s, 401s...)."""

    status: int
    headers: dict = field(default_factory=dict)
    body: dict = field(default_factory=lambda: {"error": {"message": "scripted failure"}})


class FakeOpenAI:
    """Speaks enough of the OpenAI protocol for the client: /v1/chat/completions and /v1/completions,
    JSON or server-sent events. ``reply(prompt, n, body) -> list[str]`` makes the texts; ``failures`` are
    answered first, in order. ``max_choices`` imitates servers that ignore n."""

    Scripted = Scripted  # tests reach it through the fixture (conftest modules are not importable)

    def __init__(self, reply: Callable[[str, int, dict], list[str]]):
        self.reply = reply
        self.failures: list[Scripted] = []
        self.requests: list[dict] = []
        self.max_choices: int | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
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

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if fake.failures:
                    failure = fake.failures.pop(0)
                    return self._json(failure.status, failure.body, failure.headers)
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                chat = self.path.endswith("chat/completions")
                prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                n = int(body.get("n", 1))
                if fake.max_choices:
                    n = min(n, fake.max_choices)
                texts = fake.reply(prompt, n, body)
                if body.get("stream"):
                    return self._stream(texts, chat, body)
                choices = [
                    {"index": i, "finish_reason": "stop",
                     **({"message": {"role": "assistant", "content": t}} if chat else {"text": t})}
                    for i, t in enumerate(texts)
                ]
                usage = {"prompt_tokens": len(prompt.split()),
                         "completion_tokens": sum(len(t.split()) for t in texts)}
                self._json(200, {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                 "choices": choices, "usage": usage})

            def _json(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, texts, chat, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b": keep-alive comment\n\n")
                for index, text in enumerate(texts):
                    for word in text.split(" "):
                        piece = word if word == text.split(" ")[0] else " " + word
                        choice = ({"index": index, "delta": {"content": piece}} if chat
                                  else {"index": index, "text": piece})
                        self.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
                    done = {"index": index, "finish_reason": "stop", **({"delta": {}} if chat else {"text": ""})}
                    self.wfile.write(f"data: {json.dumps({'choices': [done]})}\n\n".encode())
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"prompt_tokens": 3, "completion_tokens": sum(len(t.split()) for t in texts)}
                    self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler


def echo_reply(prompt: str, n: int, body: dict) -> list[str]:
    return [f"sample {i}: The answer is {len(prompt)}." for i in range(n)]


@pytest.fixture
def fake_openai():
    with FakeOpenAI(echo_reply) as server:
        yield server


@pytest.fixture
def free_port():
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fake_openai_factory():
    """The server class, for tests that need their own reply function."""
    return FakeOpenAI
