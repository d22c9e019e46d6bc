"""Hostile-input fixtures: a fake OpenAI-compatible server on 127.0.0.1 that can misbehave on purpose
(drip bytes, stall or cut a stream, answer JSON of the wrong shape, echo the caller's key), and a
helper that collects everything a run wrote so a test can grep it for secrets; small real file systems
(tmpfs) where the machine allows mounting them."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from support import fake_openai as _fake
import pytest


# -- raw behaviours: callables (handler, body) queued in server.failures ---------------------------------

def json_answer(payload, status=200, headers=None):
    def answer(handler, body):
        handler._json(status, payload, headers)
    return answer


def raw_bytes(data: bytes, status=200, content_type="application/json", length: int | None = None,
              per_byte_s: float = 0.0):
    """Send ``data`` (one byte at a time, ``per_byte_s`` apart, if given); ``length`` may claim more bytes
    than are sent, which cuts the answer."""
    def answer(handler, body):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(length if length is not None else len(data)))
        handler.end_headers()
        try:
            if per_byte_s:
                for i in range(len(data)):
                    handler.wfile.write(data[i:i + 1])
                    handler.wfile.flush()
                    time.sleep(per_byte_s)
            else:
                handler.wfile.write(data)
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        handler.close_connection = True
    return answer


def sse(events: list, done: bool = True, stall_s: float = 0.0, chat: bool = True):
    """A server-sent-event answer: ``events`` are dicts (sent as data lines) or text chunks; then, unless
    ``done`` is False, ``data: [DONE]``; ``stall_s`` waits (sending nothing) before the end."""
    def answer(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for event in events:
                text = event if isinstance(event, str) else f"data: {json.dumps(event)}\n\n"
                handler.wfile.write(text.encode())
                handler.wfile.flush()
            if stall_s:
                time.sleep(stall_s)
            if done:
                handler.wfile.write(b"data: [DONE]\n\n")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        handler.close_connection = True
    return answer


def delta(text: str, index: int = 0, finish: str | None = None) -> dict:
    return {"choices": [{"index": index, "delta": {"content": text}, "finish_reason": finish}]}


def echo_auth(status=401):
    """An error answer that repeats the request's Authorization header, as careless proxies do."""
    def answer(handler, body):
        handler._json(status, {"error": {"message": f"bad credentials: {handler.headers.get('Authorization')} "
                                                    f"for {handler.headers.get('Host')}"}})
    return answer


@pytest.fixture
def hostile():
    """The raw behaviours and the server class, for tests (conftest modules cannot be imported)."""
    return SimpleNamespace(FakeOpenAI=_fake.FakeOpenAI, echo_reply=_fake.echo_reply, Scripted=_fake.Scripted,
                           json_answer=json_answer, raw_bytes=raw_bytes, sse=sse, delta=delta, echo_auth=echo_auth)


@pytest.fixture
def server():
    with _fake.FakeOpenAI(_fake.echo_reply) as running:
        yield running


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": 1, "question": "what is 1 + 1?"}) + "\n")
    return path


@pytest.fixture
def everything_written(tmp_path):
    """All text a run left behind: its stdout and stderr plus every file under the test's folder."""
    def collect(result) -> str:
        texts = [result.stdout, result.stderr]
        for path in Path(tmp_path).rglob("*"):
            if path.is_file():
                texts.append(path.read_bytes().decode("utf-8", "replace"))
        return "\n".join(texts)
    return collect


@pytest.fixture
def clean_llm_env(monkeypatch):
    """No LLM, key or base URL from the developer's own environment."""
    for name in ("TLCLI_LLM", "TLCLI_CONFIG", "TLCLI_LLM_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                 "TLCLI_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB tmpfs (a disk that fills up); skipped where mounting is not allowed (not root)."""
    where = tmp_path / "small-disk"
    if not _mount_tmpfs(where, "size=256k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the patched-writer tests cover this")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only file system (EROFS even for root, unlike chmod); skipped where mounting is not
    allowed."""
    where = tmp_path / "read-only"
    if not _mount_tmpfs(where, "ro,size=64k"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root); the patched tests cover this")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)
