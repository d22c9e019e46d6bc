import json
import subprocess
import sys

import pytest

from tlcli.cli.report import summary_problems
from tlcli.llm.scripted import ScriptedLLM


def test_list_shows_builtins(cli):
    result = cli("prompt", "list", "--json")
    assert result.exit_code == 0, result.stderr
    *rows, summary = result.json_lines()
    assert [row["name"] for row in rows] == ["direct", "few-shot-cot", "self-consistency", "zero-shot-cot"]
    assert summary_problems(summary) == [] and summary["command"] == "prompt list" and summary["templates"] == 4


def test_saved_user_templates_are_listed_and_usable_by_name(cli, tmp_path, questions_file):
    saved = tmp_path / ".tlcli-home" / "prompt-templates"
    saved.mkdir(parents=True)
    (saved / "terse.jinja").write_text('{#- tlcli-template\nvariables = ["question"]\n-#}\n{{ question }} =')
    assert "terse" in [r.get("name") for r in cli("prompt", "list", "--json").json_lines()]
    result = cli("prompt", "show", "terse", "--input", questions_file, "--json")
    assert result.json_lines()[2]["prompt"] == "What is 10 divided by 2? ="


def test_show_renders_without_a_model_from_stdin(cli, questions_file):
    result = cli("prompt", "show", "zero-shot-cot", "--input", "-", "--json", input=questions_file.read_text())
    assert result.exit_code == 0, result.stderr
    *rows, summary = result.json_lines()
    assert [r["id"] for r in rows] == ["add", "fruit", "half"]
    assert summary_problems(summary) == [] and summary["questions"] == 3
    assert rows[1]["prompt"].endswith("(A) car (B) apple (C) stone\nA: Let's think step by step.")


def test_few_shot_needs_exemplars(cli, questions_file, exemplars_file):
    missing = cli("prompt", "show", "few-shot-cot", "--input", questions_file)
    assert missing.exit_code == 2 and "--exemplars" in missing.stderr
    ok = cli("prompt", "show", "few-shot-cot", "--input", questions_file, "--exemplars", exemplars_file)
    assert ok.exit_code == 0 and "2 + 1 = 3. The answer is 3." in ok.stdout


def test_run_streams_one_json_line_per_question(cli, questions_file, replies_file):
    llm = replies_file(["3 and 2 make 5. The answer is 5.", "Apples grow on trees. The answer is (B).",
                        "I am not sure."])
    result = cli("prompt", "run", "zero-shot-cot", "--input", questions_file, "--llm", llm, "--json")
    assert result.exit_code == 0, result.stderr
    *rows, summary = result.json_lines()
    assert [(r["id"], r["answer"]) for r in rows] == [("add", "5"), ("fruit", "B"), ("half", None)]
    assert summary_problems(summary) == [] and (summary["questions"], summary["answered"]) == (3, 2)
    assert {"id", "prompt", "completions", "answer", "votes"} <= set(rows[0])
    assert rows[0]["votes"] == {"5": 1} and rows[2]["votes"] == {}


def test_run_plain_output_is_tab_separated(cli, questions_file, replies_file):
    result = cli("prompt", "run", "direct", "--input", questions_file, "--llm", replies_file([" 5"]))
    assert result.stdout.splitlines()[0] == "add\t5\t5:1"


def test_self_consistency_is_one_generate_call_with_n(cli, questions_file, monkeypatch):
    votes = iter(["The answer is 5.", "The answer is 6.", "The answer is 5.", "no answer", "The answer is 6."])
    fake = ScriptedLLM([lambda prompt, sample: next(votes, "The answer is 5.")])
    monkeypatch.setattr("tlcli.llm.resolve_llm", lambda spec=None: fake)
    result = cli("prompt", "run", "self-consistency", "--input", questions_file, "--json", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert (call.n, len(call.prompts), call.temperature, call.seed) == (5, 3, 0.7, 3)
    first = result.json_lines()[0]
    assert first["votes"] == {"5": 2, "6": 2} and first["answer"] == "5"  # tie: first seen wins
    assert len(first["completions"]) == 5


def test_batch_size_chunks_questions(cli, questions_file, monkeypatch):
    fake = ScriptedLLM(["The answer is 5."])
    monkeypatch.setattr("tlcli.llm.resolve_llm", lambda spec=None: fake)
    cli("prompt", "run", "self-consistency", "--input", questions_file, "--batch-size", "2", "--n", "3")
    assert [(len(c.prompts), c.n) for c in fake.calls] == [(2, 3), (1, 3)]


def test_greedy_with_several_samples_is_refused(cli, questions_file, replies_file):
    result = cli("prompt", "run", "direct", "--input", questions_file, "--llm", replies_file(["x"]),
                 "--n", "3", "--temperature", "0")
    assert result.exit_code == 2 and "temperature" in result.stderr


def test_eval_table_and_json(cli, questions_file, replies_file, tmp_path):
    llm = replies_file(["The answer is 5.", "The answer is (C).", "nothing"])
    table = cli("prompt", "eval", "zero-shot-cot", "--input", questions_file, "--llm", llm)
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines()[1].split() == ["template", "n", "questions", "correct", "wrong", "no_answer",
                                                    "accuracy"]
    assert table.stdout.splitlines()[2].split() == ["zero-shot-cot", "1", "3", "1", "1", "1", "0.333"]
    predictions = tmp_path / "pred.jsonl"
    *per_template, summary = cli("prompt", "eval", "zero-shot-cot", "direct", "--input", questions_file, "--llm",
                                 llm, "--json", "--predictions", predictions).json_lines()
    assert [s["template"] for s in per_template] == ["zero-shot-cot", "direct"]
    assert per_template[0]["accuracy"] == 0.3333 and per_template[0]["no_answer"] == 1
    assert summary_problems(summary) == [] and summary["command"] == "prompt eval"
    assert summary["metrics"]["accuracy"] == summary["best"]["value"] == max(s["accuracy"] for s in per_template)
    assert summary["accuracy_by_template"] == {s["template"]: s["accuracy"] for s in per_template}
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(lines) == 6 and lines[0]["gold"] == "5" and lines[0]["correct"] is True


def test_eval_needs_gold_answers(cli, tmp_path, replies_file):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "no gold here"}\n')
    result = cli("prompt", "eval", "direct", "--input", questions, "--llm", replies_file(["1"]))
    assert result.exit_code == 2 and "'answer'" in result.stderr


@pytest.mark.parametrize("text, words", [("{not json\n", "line 1 is not JSON"), ("[1, 2]\n", "expected an object")])
def test_bad_input_lines_exit_2(cli, tmp_path, text, words):
    questions = tmp_path / "q.jsonl"
    questions.write_text(text)
    result = cli("prompt", "show", "direct", "--input", questions)
    assert result.exit_code == 2 and words in result.stderr


def test_run_on_the_tiny_local_model_draws_n_samples_in_one_forward_pass(cli, questions_file, tiny_model_dir,
                                                                        monkeypatch):
    from tlcli.llm.hf import HFLLM

    built = []
    original_init = HFLLM.__init__

    def remember(self, spec):
        original_init(self, spec)
        built.append(self)

    monkeypatch.setattr(HFLLM, "__init__", remember)
    result = cli("prompt", "run", "self-consistency", "--input", questions_file, "--llm", f"hf:{tiny_model_dir}",
                 "--n", "4", "--max-tokens", "6", "--seed", "0", "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json_lines()[:-1]
    assert len(rows) == 3 and all(len(r["completions"]) == 4 for r in rows)
    assert built[0].forward_calls == 1  # 3 questions x 4 samples: one model.generate


@pytest.mark.parametrize("command", ["list", "show", "run", "eval"])
def test_every_command_help_has_an_example(cli, command):
    result = cli("prompt", command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and f"tlcli prompt {command}" in result.stdout


def test_prompt_help_imports_nothing_heavy():
    code = (
        "import sys; from tlcli.cli import main\n"
        "try:\n    main(['prompt', 'run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'transformers', 'jinja2', 'httpx') if m in sys.modules],"
        " file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stderr, done.stderr


def test_chat_backend_gets_system_and_user_messages(cli, tmp_path, questions_file, chat_server):
    template = tmp_path / "terse.jinja"
    template.write_text('{#- tlcli-template\nvariables = ["question"]\nsystem = "Answer with a number."\n-#}\n'
                        "Q: {{ question }}\nA:")
    result = cli("prompt", "run", template, "--input", questions_file, "--llm", chat_server.spec(), "--json",
                 "--n", "2", "--temperature", "0.5")
    assert result.exit_code == 0, result.stderr
    rows = result.json_lines()[:-1]
    assert [r["answer"] for r in rows] == ["5", "5", "5"] and rows[0]["votes"] == {"5": 2}
    # the server's own counts: the words of the user's turn, and 7 words in each of the 2 replies
    assert rows[0]["tokens"] == {"prompt": len(rows[0]["prompt"].split()), "completion": 14}
    requests = chat_server.requests
    assert len(requests) == 3 and all(r["path"] == "/v1/chat/completions" for r in requests)
    first = sorted(chat_server.bodies, key=lambda b: b["messages"][1]["content"])[0]
    assert first["n"] == 2 and [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][0]["content"] == "Answer with a number."
    assert rows[0]["messages"][1]["content"] == rows[0]["prompt"]


def test_completions_backend_gets_the_raw_prompt(cli, tmp_path, questions_file, chat_server):
    result = cli("prompt", "run", "zero-shot-cot", "--input", questions_file, "--json",
                 "--llm", chat_server.spec("api=completions"))
    assert result.exit_code == 0, result.stderr
    assert [r["path"] for r in chat_server.requests] == ["/v1/completions"] * 3
    assert sorted(body["prompt"] for body in chat_server.bodies)[0].endswith("A: Let's think step by step.")
    assert "messages" not in result.json_lines()[0]


def test_duplicate_id_check_is_linear(tmp_path):
    import time

    from tlcli.console.errors import UsageError
    from tlcli_prompting.questions import read_questions

    path = tmp_path / "many.jsonl"
    lines = [json.dumps({"id": i, "question": "q"}) for i in range(60_000)]
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    assert len(read_questions(str(path))) == 60_000
    assert time.perf_counter() - started < 5  # the quadratic check took 23 s
    path.write_text("\n".join(lines + [json.dumps({"id": 59_999, "question": "again"})]) + "\n")
    with pytest.raises(UsageError, match="59999"):
        read_questions(str(path))
    path.write_text('{"id": 1, "question": "a"}\n{"id": "1", "question": "b"}\n')
    assert len(read_questions(str(path))) == 2  # 1 and "1" are different ids


def test_model_and_file_text_is_escaped_on_a_terminal_and_data_in_a_pipe(cli, tmp_path, replies_file,
                                                                        on_a_terminal):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q\x1b[2J", "question": "Say \x1b]52;c;ZXZpbA==\x07 now?\nOK"}) + "\n")
    shown = on_a_terminal("prompt", "show", "direct", "--input", questions)
    assert "\x1b]52" not in shown and "\x1b[2J" not in shown
    assert "\\x1b]52" in shown and "### q\\x1b[2J" in shown
    assert "\nOK\n" in shown  # the prompt keeps its own lines
    ran = on_a_terminal("prompt", "run", "direct", "--input", questions, "--llm", replies_file(["\x1b[31m 7"]),
                        "--quiet")
    assert "\x1b[2J" not in ran and "q\\x1b[2J\t7\t7:1" in ran
    # In a pipe the text is data, as it came; with --json, JSON-escaped.
    piped = cli("prompt", "show", "direct", "--input", questions)
    assert "### q\x1b[2J" in piped.stdout and "\x1b]52;c;" in piped.stdout
    as_json = cli("prompt", "run", "direct", "--input", questions, "--llm", replies_file(["\x1b[31m 7"]), "--json")
    assert "\x1b" not in as_json.stdout and as_json.json_lines()[0]["completions"] == ["\x1b[31m 7"]
