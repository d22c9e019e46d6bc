"""An OpenAI-compatible chat server on 127.0.0.1 for the agents tests and benchmark: JSON or server-sent
events (content deltas, tool-call deltas in fragments, a usage chunk), a fixed latency per request, and a
count of requests in flight. ``reply(body, n) -> [str | {"content", "tool_calls": [{"name", "arguments"}]}]``
makes the choices."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class AgentServer:
    def __init__(self, reply: Callable[[dict, int], list], latency: float = 0.0):
        self.reply = reply
        self.latency = latency
        self.requests: list[dict] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def spec(self, options: str = "") -> str:
        return f"openai:{self.base_url}#fake-model" + (f"?{options}" if options else "")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    if fake.latency:
                        time.sleep(fake.latency)
                    items = [_item(r) for r in fake.reply(body, int(body.get("n", 1)))]
                    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
                    usage = {"prompt_tokens": prompt, "completion_tokens": sum(len(t.split()) + len(c) for t, c in items)}
                    if body.get("stream"):
                        self._stream(items, usage, body)
                    else:
                        self._json(items, usage)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _json(self, items, usage):
                choices = []
                for i, (text, calls) in enumerate(items):
                    message = {"role": "assistant", "content": text if text or not calls else None}
                    if calls:
                        message["tool_calls"] = [{"id": f"call_{len(fake.requests)}_{i}_{j}", "type": "function",
                                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                                 for j, c in enumerate(calls)]
                    choices.append({"index": i, "message": message, "finish_reason": "tool_calls" if calls else "stop"})
                data = json.dumps({"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, items, usage, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

                def send(payload):
                    self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())

                for index, (text, calls) in enumerate(items):
                    for position, word in enumerate(text.split(" ") if text else []):
                        send({"choices": [{"index": index, "delta": {"content": word if position == 0 else " " + word}}]})
                    for j, call in enumerate(calls):
                        send({"choices": [{"index": index, "delta": {"tool_calls": [
                            {"index": j, "id": f"call_s{len(fake.requests)}_{index}_{j}", "type": "function",
                             "function": {"name": call["name"], "arguments": ""}}]}}]})
                        half = len(call["arguments"]) // 2
                        for fragment in (call["arguments"][:half], call["arguments"][half:]):
                            send({"choices": [{"index": index, "delta": {"tool_calls": [
                                {"index": j, "function": {"arguments": fragment}}]}}]})
                    send({"choices": [{"index": index, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    send({"choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler


def _item(reply) -> tuple[str, list[dict]]:
    if isinstance(reply, str):
        return reply, []
    calls = [{"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
              else json.dumps(c["arguments"])} for c in reply.get("tool_calls") or []]
    return reply.get("content") or "", calls


def by_role(script: dict[str, list]) -> Callable[[dict, int], list]:
    """Replies chosen by the speaking role (found in the system prompt), each role's in turn: the same
    conversation whatever order concurrent requests arrive in."""
    used: dict[str, int] = {}
    lock = threading.Lock()

    def reply(body: dict, n: int) -> list:
        system = body["messages"][0]["content"]
        first_sentence = system.split(".")[0]
        role = next(name for name in script if f" {name}" in first_sentence)
        out = []
        with lock:
            for _ in range(n):
                index = used.get(role, 0)
                used[role] = index + 1
                replies = script[role]
                out.append(replies[min(index, len(replies) - 1)])
        return out

    return reply
