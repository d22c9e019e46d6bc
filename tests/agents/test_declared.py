"""The agents commands as declared data: tlcli --help summaries, --config / --print-config, the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.agents import last_json


@pytest.mark.parametrize("path", ["agents teams", "agents solve", "agents replay"])
def test_the_declared_summary_is_the_first_line_of_the_help(path):
    from tlcli.plugin import resolve_target
    from tlcli_agents.plugin import plugin

    target, summary = plugin.commands[path]
    command = resolve_target(target)
    assert command.path == path and command.help.splitlines()[0] == summary


def test_solve_reads_a_config_file_and_records_it_as_run(cli, use_llm, fake_llm, tmp_path):
    (tmp_path / "f.toml").write_text('max_turns = 3\nmax-total-tokens = 999\ntools = ["calculator"]\nseed = 7\n')
    use_llm(fake_llm(["never done"]))
    result = cli("agents", "solve", "-", "--llm", "fake:", "--config", "f.toml", "--out", "runs/c", "--json",
                 input="2 + 2?\n")
    assert result.exit_code == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["turns"] == 3 and summary["outcome"] == "budget_exhausted"
    saved = json.loads(Path("runs/c/config.json").read_text())
    assert (saved["max_turns"], saved["max_total_tokens"], saved["tools"], saved["seed"]) == (3, 999, ["calculator"], 7)
    assert saved["task"] == "2 + 2?" and saved["team_data"]["name"] == "plan-solve-critique"  # read, resolved
    assert (saved["max_tokens"], saved["temperature"]) == (512, 0.0)
    # config.json's values are a config file again: the same run, printed back
    from tlcli.cli.command import to_toml

    Path("again.toml").write_text(to_toml(saved))
    again = cli("agents", "solve", "--config", "again.toml", "--print-config")
    assert again.exit_code == 0, again.stderr
    assert "max_turns = 3" in again.stdout and 'task = "2 + 2?"' in again.stdout


def test_tools_are_comma_separated_or_repeated_and_mcp_keeps_its_list(cli):
    result = cli("agents", "solve", "t", "--tools", "calculator,files:docs", "--tools", "mcp:python srv.py#a,b",
                 "--print-config")
    assert result.exit_code == 0, result.stderr
    assert 'tools = ["calculator", "files:docs", "mcp:python srv.py#a,b"]' in result.stdout


def test_solve_takes_no_resume_and_bad_budgets_are_one_line(cli):
    result = cli("agents", "solve", "t", "--resume", "runs/x")
    assert result.exit_code == 2 and "--resume" in result.stderr
    result = cli("agents", "solve", "t", "--max-turns", "0")
    assert result.exit_code == 2 and "--max-turns" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not Path("runs").exists()
