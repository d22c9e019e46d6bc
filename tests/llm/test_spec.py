import pytest

from tlcli.console.errors import UsageError
from tlcli.llm import HFSpec, OpenAISpec, ScriptedSpec, find_spec, parse_spec


def test_hf_spec_with_options():
    spec = parse_spec("hf:./models/tiny?dtype=bfloat16&trust_remote_code=true&batch_size=4")
    assert isinstance(spec, HFSpec)
    assert (spec.model, spec.dtype, spec.trust_remote_code, spec.batch_size) == ("./models/tiny", "bfloat16", True, 4)


def test_hf_spec_is_safe_by_default():
    spec = parse_spec("hf:Qwen/Qwen2.5-0.5B-Instruct")
    assert spec.trust_remote_code is False and spec.device == "auto" and spec.dtype == "auto"


def test_openai_spec_splits_url_and_model():
    spec = parse_spec("openai:http://127.0.0.1:8000/v1/#llama3:8b?api=completions&stream=true")
    assert isinstance(spec, OpenAISpec)
    assert (spec.base_url, spec.model, spec.api, spec.stream) == ("http://127.0.0.1:8000/v1", "llama3:8b",
                                                                  "completions", True)


def test_openai_url_query_before_model_is_kept():
    spec = parse_spec("openai:https://host/v1?tenant=a#gpt")
    assert spec.base_url == "https://host/v1?tenant=a" and spec.model == "gpt"


def test_scripted_spec():
    assert isinstance(parse_spec("scripted:replies.json"), ScriptedSpec)


@pytest.mark.parametrize(
    "text, words",
    [
        ("gpt2", "not understood"),
        ("openai:http://localhost:8000/v1", "names no model"),
        ("openai:localhost:8000#m", "base_url"),
        ("hf:./m?colour=blue", "colour"),
        ("hf:./m?dtype=int3", "dtype"),
    ],
)
def test_bad_specs_name_the_problem(text, words):
    with pytest.raises(UsageError, match=words):
        parse_spec(text)


def test_resolution_order_flag_env_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TLCLI_LLM", raising=False)
    monkeypatch.delenv("TLCLI_CONFIG", raising=False)
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    with pytest.raises(UsageError, match="no LLM given"):
        find_spec(None)
    (tmp_path / "tlcli.toml").write_text('[llm]\nspec = "openai:http://h/v1#m"\noptions = { timeout = 9 }\n')
    from_file = find_spec(None)
    assert from_file.model == "m" and from_file.timeout == 9
    monkeypatch.setenv("TLCLI_LLM", "hf:./env-model")
    assert find_spec(None).model == "./env-model"
    assert find_spec("hf:./flag-model").model == "./flag-model"


def test_config_file_with_unknown_key_is_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TLCLI_LLM", raising=False)
    config = tmp_path / "c.toml"
    config.write_text('[llm]\nmodel = "x"\n')
    monkeypatch.setenv("TLCLI_CONFIG", str(config))
    with pytest.raises(UsageError, match=r"\[llm\] takes spec"):
        find_spec(None)
