"""P1: nothing in the current folder runs code, and a key goes only to a host the user chose."""

import json
from pathlib import Path

import pytest

KEY = "sk-hostiletest0123456789abcdef"


def evil_model(folder: Path) -> Path:
    """A model folder whose custom code would leave a marker file if it ever ran."""
    folder.mkdir()
    marker = folder / "RAN"
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel",
                     "AutoTokenizer": ["evil.EvilTokenizer", None]},
    }))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}))
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    return marker


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("llm_table", [
    'spec = "hf:./evil"\noptions = { trust_remote_code = true }',
    'spec = "hf:./evil?trust_remote_code=true"',
])
def test_tlcli_toml_cannot_turn_on_remote_code(cli, tmp_path, questions, clean_llm_env, llm_table):
    marker = evil_model(tmp_path / "evil")
    (tmp_path / "tlcli.toml").write_text(f"[llm]\n{llm_table}\n")
    result = cli("prompt", "run", "direct", "--input", questions)
    assert result.exit_code == 2, result.stderr
    line = one_line(result.stderr)
    assert "trust_remote_code" in line and "command line" in line and "tlcli.toml" in line
    assert "config file tlcli.toml" in result.stderr  # says which config file was read
    assert not marker.exists()


def test_environment_cannot_turn_on_remote_code(cli, tmp_path, questions, clean_llm_env):
    marker = evil_model(tmp_path / "evil")
    result = cli("prompt", "run", "direct", "--input", questions,
                 env={"TLCLI_LLM": "hf:./evil?trust_remote_code=true"})
    assert result.exit_code == 2 and "$TLCLI_LLM" in one_line(result.stderr)
    assert not marker.exists()


def test_a_model_folder_with_code_is_refused_without_the_flag(cli, tmp_path, questions, clean_llm_env):
    marker = evil_model(tmp_path / "evil")
    (tmp_path / "tlcli.toml").write_text('[llm]\nspec = "hf:./evil"\n')
    result = cli("prompt", "run", "direct", "--input", questions)
    assert result.exit_code == 2, result.stderr
    assert "trust_remote_code=true" in one_line(result.stderr)  # the fix, on the command line
    assert not marker.exists()


def test_config_file_pointing_the_default_key_at_another_host_is_refused(cli, tmp_path, questions, server,
                                                                         clean_llm_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    (tmp_path / "tlcli.toml").write_text(f'[llm]\nspec = "openai:{server.base_url}#m"\n')
    result = cli("prompt", "run", "direct", "--input", questions)
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert "tlcli.toml" in line and "OPENAI_API_KEY" in line and "OPENAI_BASE_URL" in line
    assert server.requests == []  # nothing was sent, with or without the key
    assert KEY not in result.stderr + result.stdout


def test_a_named_key_variable_in_a_config_file_is_refused_too(cli, tmp_path, questions, server, clean_llm_env,
                                                              monkeypatch):
    monkeypatch.setenv("MY_CLOUD_KEY", KEY)
    (tmp_path / "tlcli.toml").write_text(f'[llm]\nspec = "openai:{server.base_url}#m?api_key_env=MY_CLOUD_KEY"\n')
    result = cli("prompt", "run", "direct", "--input", questions)
    assert result.exit_code == 2 and "MY_CLOUD_KEY" in one_line(result.stderr)
    assert server.requests == []


def authorization(server) -> list:
    return [{k.lower(): v for k, v in r["headers"].items()}.get("authorization") for r in server.requests]


def test_the_key_goes_to_the_host_configured_for_it(cli, tmp_path, questions, server, clean_llm_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    (tmp_path / "tlcli.toml").write_text(f'[llm]\nspec = "openai:{server.base_url}#m"\n')
    result = cli("prompt", "run", "direct", "--input", questions, "--json")
    assert result.exit_code == 0, result.stderr
    assert authorization(server) == [f"Bearer {KEY}"]


def test_a_host_named_on_the_command_line_gets_the_key(cli, questions, server, clean_llm_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"openai:{server.base_url}#m")
    assert result.exit_code == 0, result.stderr
    assert authorization(server) == [f"Bearer {KEY}"]


def test_a_host_named_in_tlcli_llm_gets_the_key(cli, questions, server, clean_llm_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    result = cli("prompt", "run", "direct", "--input", questions, env={"TLCLI_LLM": f"openai:{server.base_url}#m"})
    assert result.exit_code == 0, result.stderr
    assert authorization(server) == [f"Bearer {KEY}"] and "LLM from $TLCLI_LLM" in result.stderr


def test_without_a_key_a_config_file_server_is_fine(cli, tmp_path, questions, server, clean_llm_env):
    (tmp_path / "tlcli.toml").write_text(f'[llm]\nspec = "openai:{server.base_url}#m"\n')
    result = cli("prompt", "run", "direct", "--input", questions)
    assert result.exit_code == 0, result.stderr
    assert authorization(server) == [None]
    assert "LLM settings read from config file tlcli.toml" in result.stderr


def test_redirects_are_not_followed(cli, questions, server, hostile, clean_llm_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.failures.append(hostile.json_answer({}, status=307, headers={"Location": "http://evil.example/v1"}))
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"openai:{server.base_url}#m")
    assert result.exit_code == 2 and "redirect" in one_line(result.stderr)
    assert len(server.requests) == 1
