import pytest

from tlcli.console.errors import JobFailed, UsageError
from tlcli.llm import parse_spec
from tlcli.llm.openai_compat import OpenAILLM, _parse_retry_after


def make(server, options="", sleeps=None):
    spec = parse_spec(f"openai:{server.base_url}#tiny{options}")
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return OpenAILLM(spec, sleep=record)


def test_chat_completions_with_n(fake_openai):
    with make(fake_openai) as llm:
        results = llm.generate(["hello there", "q2"], n=3, temperature=0.5, max_tokens=20, stop=["END"], seed=4)
    assert [len(r.texts) for r in results] == [3, 3]
    assert results[0].texts[0] == f"sample 0: The answer is {len('hello there')}."
    body = fake_openai.requests[0]["body"]
    assert body["messages"] == [{"role": "user", "content": body["messages"][0]["content"]}]
    assert (body["n"], body["temperature"], body["max_tokens"], body["stop"], body["seed"]) == (3, 0.5, 20, ["END"], 4)
    assert len(fake_openai.requests) == 2  # one request per prompt, n samples each
    assert results[0].prompt_tokens == 2 and sum(results[0].completion_tokens) == 18


def test_completions_endpoint(fake_openai):
    with make(fake_openai, "?api=completions") as llm:
        result = llm.generate(["abc"])[0]
    assert fake_openai.requests[0]["path"] == "/v1/completions"
    assert fake_openai.requests[0]["body"]["prompt"] == "abc"
    assert result.texts == ["sample 0: The answer is 3."]


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_streaming_yields_pieces(fake_openai, api):
    with make(fake_openai, f"?api={api}") as llm:
        pieces = list(llm.stream("four"))
    assert len(pieces) > 1
    assert "".join(pieces) == "sample 0: The answer is 4."
    assert fake_openai.requests[0]["body"]["stream"] is True


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_generate_over_sse_collects_every_choice(fake_openai, api):
    with make(fake_openai, f"?api={api}&stream=true") as llm:
        result = llm.generate(["xy"], n=2, temperature=0.7)[0]
    assert result.texts == ["sample 0: The answer is 2.", "sample 1: The answer is 2."]
    assert sum(result.completion_tokens) == 12  # from the usage event: 2 x 6 words
    assert result.finish_reasons == ["stop", "stop"]


def test_servers_that_ignore_n_are_asked_again(fake_openai):
    fake_openai.max_choices = 1
    with make(fake_openai) as llm:
        result = llm.generate(["p"], n=3, temperature=0.7)[0]
    assert len(result.texts) == 3 and len(fake_openai.requests) == 3


def test_429_then_200_retries_and_honours_retry_after(fake_openai):
    fake_openai.failures.append(fake_openai.Scripted(429, {"Retry-After": "2"}))
    fake_openai.failures.append(fake_openai.Scripted(503))
    sleeps = []
    with make(fake_openai, "?backoff=0.25", sleeps) as llm:
        result = llm.generate(["p"])[0]
    assert result.texts == ["sample 0: The answer is 1."]
    assert len(fake_openai.requests) == 3 and llm.requests_sent == 3
    assert sleeps[0] == 2.0  # Retry-After wins over the computed backoff
    assert 0.125 <= sleeps[1] <= 0.5  # second try: jittered 0.25 * 2**1 window


def test_5xx_after_all_retries_is_a_job_failure(fake_openai):
    fake_openai.failures.extend(fake_openai.Scripted(500) for _ in range(3))
    with make(fake_openai, "?max_retries=2", sleeps=[]) as llm:
        with pytest.raises(JobFailed, match="500 after 3 tries"):
            llm.generate(["p"])


def test_bad_key_is_usage_error_naming_the_variable(fake_openai):
    fake_openai.failures.append(fake_openai.Scripted(401, body={"error": {"message": "invalid key"}}))
    with make(fake_openai) as llm:
        with pytest.raises(UsageError, match="TLCLI_LLM_API_KEY"):
            llm.generate(["p"])


def test_api_key_from_environment_is_sent(fake_openai, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TLCLI_LLM_API_KEY", "sk-test")
    with make(fake_openai) as llm:
        llm.generate(["p"])
    headers = {k.lower(): v for k, v in fake_openai.requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test"


def test_named_key_variable_must_exist(fake_openai, monkeypatch):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    with pytest.raises(UsageError, match="MY_LLM_KEY"):
        make(fake_openai, "?api_key_env=MY_LLM_KEY")


def test_unreachable_server_is_usage_error(free_port):
    llm = OpenAILLM(parse_spec(f"openai:http://127.0.0.1:{free_port}/v1#m"), sleep=lambda s: None)
    with pytest.raises(UsageError, match="cannot reach"):
        llm.generate(["p"])
    assert llm.requests_sent == 1  # a refused connection is not retried


def test_stop_strings_are_applied_even_if_the_server_does_not(fake_openai):
    with make(fake_openai) as llm:
        result = llm.generate(["p"], stop=[" answer"])[0]
    assert result.texts == ["sample 0: The"] and result.finish_reasons == ["stop"]


def test_retry_after_accepts_http_dates():
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert _parse_retry_after("3") == 3.0
    assert _parse_retry_after("soon") is None
