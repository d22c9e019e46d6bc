"""The backends through the command line: exit codes and the HTTP path end to end."""

import json


def write_questions(path, count=2):
    path.write_text("".join(json.dumps({"id": i, "question": f"what is {i} + 1?"}) + "\n" for i in range(count)))
    return path


def test_prompt_run_over_http_served_by_the_tiny_model(cli, tmp_path, tiny_llm, fake_openai_factory):
    def reply(prompt, n, body):
        temperature = body.get("temperature", 0.0)
        return tiny_llm.generate([prompt], n=n, temperature=temperature, max_tokens=body["max_tokens"])[0].texts

    questions = write_questions(tmp_path / "q.jsonl")
    with fake_openai_factory(reply) as server:
        result = cli("prompt", "run", "self-consistency", "--input", questions, "--llm",
                     f"openai:{server.base_url}#tiny?stream=true", "--n", "3", "--max-tokens", "5", "--json")
    assert result.exit_code == 0, result.stderr
    *rows, summary = result.json_lines()
    assert summary["command"] == "prompt run" and summary["questions"] == 2
    assert [r["id"] for r in rows] == [0, 1]
    assert all(len(r["completions"]) == 3 for r in rows)
    assert all({"prompt", "answer", "votes"} <= set(r) for r in rows)
    assert [r["body"]["n"] for r in server.requests] == [3, 3]


def test_missing_model_folder_exits_2_with_one_line(cli, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl")
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"hf:{tmp_path / 'missing-model'}")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "does not exist" in result.stderr


def test_unreachable_server_exits_2_with_one_line(cli, tmp_path, free_port):
    questions = write_questions(tmp_path / "q.jsonl")
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"openai:http://127.0.0.1:{free_port}/v1#m")
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot reach" in last and "start the server" in last


def test_llm_from_environment_variable(cli, tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["The answer is 7."]))
    questions = write_questions(tmp_path / "q.jsonl", 1)
    result = cli("prompt", "run", "zero-shot-cot", "--input", questions, "--json",
                 env={"TLCLI_LLM": f"scripted:{replies}"})
    assert result.exit_code == 0, result.stderr
    assert result.json_lines()[0]["answer"] == "7"


def test_a_prompt_longer_than_the_models_context_exits_2_naming_the_fix(cli, tmp_path, tiny_model_dir):
    # The tiny GPT-2 has 512 positions; past them its position embedding raised IndexError (a traceback).
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": 0, "question": "word " * 600}) + "\n")
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"hf:{tiny_model_dir}",
                 "--max-tokens", "4")
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "context of 512 tokens" in last and "--max-tokens" in last
