"""P3: an OpenAI-compatible server that misbehaves gives a retry and then one line, never a traceback or
a hang: wrong-shape JSON, stalled and cut streams, a byte-a-second drip, absurd Retry-After."""

import time

import pytest

from tlcli.console.errors import JobFailed
from tlcli.llm import parse_spec
from tlcli.llm.openai_compat import OpenAILLM


def one_line(result) -> str:
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tlcli: error")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("payload", [
    {"choices": "nope"},
    {"choices": [{"message": 5}]},
    {"choices": [{"message": {"content": {"text": "x"}}}]},
    {"choices": [{"message": {"content": "x", "tool_calls": [{"function": None}]}}]},
    {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "many"}},
    [1, 2, 3],
    {"result": "hello"},
    "just a string",
])
def test_valid_json_of_the_wrong_shape_is_one_line(cli, questions, server, hostile, clean_llm_env, payload):
    server.failures.append(hostile.json_answer(payload))
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"openai:{server.base_url}#m")
    assert result.exit_code == 1
    assert "not an OpenAI chat completion" in one_line(result)


@pytest.mark.parametrize("event", [{"choices": "x"}, {"choices": [{"delta": {"content": 5}}]}, [1], 3])
def test_a_streamed_chunk_of_the_wrong_shape_is_one_line(cli, questions, server, hostile, clean_llm_env, event):
    server.failures.append(hostile.sse([hostile.delta("ok"), event]))
    result = cli("prompt", "run", "direct", "--input", questions,
                 "--llm", f"openai:{server.base_url}#m?stream=true")
    assert result.exit_code == 1 and "streamed event" in one_line(result)


def test_an_error_object_instead_of_a_completion_is_reported(cli, questions, server, hostile, clean_llm_env):
    server.failures.append(hostile.json_answer({"error": {"message": "model is loading"}}))
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"openai:{server.base_url}#m")
    assert result.exit_code == 1 and "model is loading" in one_line(result)


def test_a_stalled_stream_is_retried(cli, questions, server, hostile, clean_llm_env):
    server.failures.append(hostile.sse([hostile.delta("The")], stall_s=3))
    start = time.monotonic()
    result = cli("prompt", "run", "direct", "--input", questions, "--json",
                 "--llm", f"openai:{server.base_url}#m?stream=true&timeout=0.5&backoff=0")
    assert result.exit_code == 0, result.stderr
    assert len(server.requests) == 2 and time.monotonic() - start < 2.5
    [completion] = result.json_lines()[0]["completions"]
    assert completion.startswith("sample 0: The answer is")  # the second, whole answer


def test_a_stream_that_always_stalls_ends_in_one_line(cli, questions, server, hostile, clean_llm_env):
    server.failures.extend(hostile.sse([hostile.delta("The")], stall_s=3) for _ in range(2))
    result = cli("prompt", "run", "direct", "--input", questions,
                 "--llm", f"openai:{server.base_url}#m?stream=true&timeout=0.5&max_retries=1&backoff=0")
    assert result.exit_code == 1
    assert "stalled (no event for 0.5 s) after 2 tries" in one_line(result)


@pytest.mark.parametrize("cut", ["no_done", "short_body"])
def test_a_cut_stream_is_retried(cli, questions, server, hostile, clean_llm_env, cut):
    if cut == "no_done":
        server.failures.append(hostile.sse([hostile.delta("The"), hostile.delta(" answer")], done=False))
    else:
        server.failures.append(hostile.raw_bytes(b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n',
                                                 content_type="text/event-stream", length=5000))
    result = cli("prompt", "run", "direct", "--input", questions, "--json",
                 "--llm", f"openai:{server.base_url}#m?stream=true&backoff=0")
    assert result.exit_code == 0, result.stderr
    assert len(server.requests) == 2
    assert result.json_lines()[0]["completions"][0].startswith("sample 0")


def test_a_stream_that_ends_after_every_choice_finished_needs_no_done(cli, questions, server, hostile,
                                                                     clean_llm_env):
    server.failures.append(hostile.sse([hostile.delta("The answer is 2."), hostile.delta("", finish="stop")],
                                       done=False))
    result = cli("prompt", "run", "direct", "--input", questions, "--json",
                 "--llm", f"openai:{server.base_url}#m?stream=true")
    assert result.exit_code == 0 and len(server.requests) == 1
    assert result.json_lines()[0]["answer"] == "2"


def test_a_server_dripping_one_byte_at_a_time_cannot_outlast_the_timeout(cli, questions, server, hostile,
                                                                        clean_llm_env):
    body = b'{"choices": [{"index": 0, "message": {"content": "The answer is 2."}}]}'
    server.failures.append(hostile.raw_bytes(body, per_byte_s=0.1))  # ~7 s in all, a byte every 0.1 s
    start = time.monotonic()
    result = cli("prompt", "run", "direct", "--input", questions,
                 "--llm", f"openai:{server.base_url}#m?timeout=1&max_retries=0")
    elapsed = time.monotonic() - start
    assert result.exit_code == 1
    assert "did not arrive within timeout=1 s" in one_line(result)
    assert elapsed < 3


def test_a_truncated_json_answer_is_retried(cli, questions, server, hostile, clean_llm_env):
    server.failures.append(hostile.raw_bytes(b'{"choices": [{"ind', length=900))
    result = cli("prompt", "run", "direct", "--input", questions, "--json",
                 "--llm", f"openai:{server.base_url}#m?backoff=0")
    assert result.exit_code == 0, result.stderr
    assert len(server.requests) == 2


def test_an_absurd_retry_after_is_capped_and_said(cli, questions, server, hostile, clean_llm_env):
    server.failures.append(hostile.Scripted(429, {"Retry-After": "100000"}))
    start = time.monotonic()
    result = cli("prompt", "run", "direct", "--input", questions, "--json",
                 "--llm", f"openai:{server.base_url}#m?max_backoff=0.2")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - start < 3
    assert "asked to wait 100000 s (Retry-After); waiting 0 s instead" in result.stderr


def test_the_default_cap_on_retry_after(server, hostile):
    server.failures.append(hostile.Scripted(429, {"Retry-After": "100000"}))
    sleeps, said = [], []
    llm = OpenAILLM(parse_spec(f"openai:{server.base_url}#m"), sleep=sleeps.append, say=said.append)
    assert llm.chat([{"role": "user", "content": "hi"}]).text.startswith("sample 0")
    assert sleeps == [30.0] and "waiting 30 s instead" in said[0]


def test_a_server_that_ignores_max_tokens_is_stopped(server, hostile):
    flood = [hostile.delta(" word") for _ in range(2000)]
    server.failures.append(hostile.sse(flood))
    llm = OpenAILLM(parse_spec(f"openai:{server.base_url}#m?stream=true"))
    with pytest.raises(JobFailed, match="does not honour max_tokens"):
        llm.chat([{"role": "user", "content": "hi"}], max_tokens=5)


def test_chat_stream_cut_after_text_was_shown_ends_in_one_error(server, hostile):
    server.failures.append(hostile.sse([hostile.delta("The"), hostile.delta(" answer")], done=False))
    llm = OpenAILLM(parse_spec(f"openai:{server.base_url}#m?backoff=0"))
    pieces = []
    with pytest.raises(JobFailed, match="after 2 pieces of the reply; the reply above is incomplete"):
        for piece in llm.chat_stream([{"role": "user", "content": "hi"}]):
            pieces.append(piece)
    assert pieces == ["The", " answer"] and len(server.requests) == 1


def test_chat_stream_failing_before_any_text_is_retried(server, hostile):
    server.failures.append(hostile.sse([], done=False))
    llm = OpenAILLM(parse_spec(f"openai:{server.base_url}#m?backoff=0"))
    assert "".join(llm.chat_stream([{"role": "user", "content": "hi"}])).startswith("sample 0")
    assert len(server.requests) == 2
