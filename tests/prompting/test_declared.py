"""`tlcli prompt` as data: the lazy table's summaries are the commands' own first help lines, and the
shared LLM options are checked before any work."""

from __future__ import annotations

import pytest

from tlcli.plugin import resolve_target


def test_declared_summaries_are_the_first_help_lines():
    from tlcli_prompting.plugin import plugin

    assert set(plugin.commands) == {"prompt list", "prompt show", "prompt run", "prompt eval"}
    for path, (target, summary) in plugin.commands.items():
        command = resolve_target(target)
        assert command.path == path
        assert command.help.splitlines()[0] == summary, path


@pytest.mark.parametrize("args, flag", [
    (["--temperature", "9"], "--temperature"), (["--max-tokens", "0"], "--max-tokens"), (["--top-p", "0"], "--top-p"),
    (["--n", "0"], "--n"), (["--answer-regex", "(a)(b)"], "--answer-regex")])
def test_bad_sampling_options_are_one_line_before_any_work(cli, questions_file, args, flag):
    result = cli("prompt", "run", "direct", "--input", questions_file, "--llm", "scripted:/nonexistent.json", *args)
    assert result.exit_code == 2 and flag in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_config_file_and_print_config(cli, questions_file, replies_file, tmp_path):
    llm = replies_file(["The answer is 5."])
    (tmp_path / "p.toml").write_text(f'template = "direct"\ninput = "{questions_file}"\nllm = "{llm}"\nn = 2\n'
                                     'temperature = 0.5\nstop = ["Q:", "\\n\\n"]\n')
    printed = cli("prompt", "run", "--config", tmp_path / "p.toml", "--print-config")
    assert printed.exit_code == 0, printed.stderr
    assert "n = 2" in printed.stdout and 'stop = ["Q:", "\\n\\n"]' in printed.stdout
    ran = cli("prompt", "run", "--config", tmp_path / "p.toml", "--json")
    assert ran.exit_code == 0, ran.stderr
    summary = ran.json_lines()[-1]
    assert summary["n"] == 2 and summary["template"] == "direct" and summary["questions"] == 3
