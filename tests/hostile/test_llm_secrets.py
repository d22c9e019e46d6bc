"""P1: keys never show up in anything a run writes, even when the server echoes them back."""

import pytest

from tlcli.console.secrets import redact, redact_config, register_secret, safe_message

KEY = "sk-proj-leakcheck0123456789ABCDEF"
PASSWORD = "hunter2-url-password-77"


def no_secret(text: str) -> None:
    assert KEY not in text and PASSWORD not in text
    assert KEY[3:] not in text and PASSWORD[:12] not in text  # not even a tail or a head of one


def test_a_failing_run_leaks_no_key_anywhere(cli, questions, server, hostile, clean_llm_env, monkeypatch,
                                            everything_written):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.failures.append(hostile.echo_auth(401))
    host = server.base_url.removeprefix("http://")
    result = cli("prompt", "run", "direct", "--input", questions, "--json",
                 "--llm", f"openai:http://user:{PASSWORD}@{host}#m")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "***" in result.stderr  # the echoed header was masked, not dropped silently
    no_secret(everything_written(result))
    sent = {k.lower(): v for k, v in server.requests[0]["headers"].items()}
    assert sent["authorization"].startswith("Basic ")  # the URL's credentials were used, only never shown


def test_retries_that_echo_the_key_leak_nothing(cli, questions, server, hostile, clean_llm_env, monkeypatch,
                                                everything_written):
    monkeypatch.setenv("TLCLI_LLM_API_KEY", KEY)
    server.failures.extend(hostile.echo_auth(503) for _ in range(3))
    result = cli("prompt", "run", "direct", "--input", questions,
                 "--llm", f"openai:{server.base_url}#m?max_retries=2&backoff=0")
    assert result.exit_code == 1 and "503 after 3 tries" in result.stderr
    no_secret(everything_written(result))


def test_an_error_event_mid_stream_is_masked(cli, questions, server, hostile, clean_llm_env, monkeypatch,
                                             everything_written):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.failures.append(hostile.sse([hostile.delta("The"), {"error": {"message": f"upstream said Bearer {KEY}"}}]))
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"openai:{server.base_url}#m?stream=true")
    assert result.exit_code == 1 and "mid-stream" in result.stderr
    no_secret(everything_written(result))


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer abc.def-123_456", "Authorization: Bearer ***"),
    ("echo: Basic dXNlcjpodW50ZXIy", "echo: Basic ***"),
    ("key sk-abcdef1234567890 rejected", "key sk-*** rejected"),
    ("GET http://bob:s3cr3t@host:8000/v1 failed", "GET http://***@host:8000/v1 failed"),
    ("https://host/v1?api_key=abcd1234&x=1", "https://host/v1?api_key=***&x=1"),
    ("nothing secret here: 25% of 1234567", "nothing secret here: 25% of 1234567"),
])
def test_redact_masks_each_kind_of_credential(text, expected):
    assert redact(text) == expected


def test_redact_masks_registered_and_environment_secrets(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-plain-value-42")
    register_secret("opaque-registered-value")
    assert redact("a tok-plain-value-42 b opaque-registered-value c") == "a *** b *** c"
    config = redact_config({"llm": "openai:http://u:p4ssw0rd@h/v1#m", "api_key": "x", "nested": {"password": 1}})
    assert config == {"llm": "openai:http://***@h/v1#m", "api_key": "***", "nested": {"password": "***"}}


def test_safe_message_never_advises_weights_only_false():
    torch_error = ("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will "
                   "likely succeed, but it can result in arbitrary code execution. Do it only if you got the "
                   "file from a trusted source.")
    cleaned = safe_message(f"cannot load model.pt: {torch_error}")
    assert "set to `False`" not in cleaned and "Weights only load failed." in cleaned
    assert "weights_only=False" not in safe_message("try torch.load with weights_only=False.")
