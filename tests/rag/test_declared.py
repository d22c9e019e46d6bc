"""The rag commands as declared data: tlcli --help summaries, --config / --print-config, the index run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.parametrize("path", ["rag index", "rag search", "rag ask", "rag eval", "rag info", "rag serve"])
def test_the_declared_summary_is_the_first_line_of_the_help(path):
    from tlcli.plugin import resolve_target
    from tlcli_rag.plugin import plugin

    target, summary = plugin.commands[path]
    command = resolve_target(target)
    assert command.path == path and command.help.splitlines()[0] == summary


def test_index_reads_a_config_file_and_records_the_paths_it_read(small_copy, cli, monkeypatch):
    monkeypatch.chdir(small_copy)
    Path("f.toml").write_text('max_file_mb = 5.0\nbatch-size = 8\nmax_bad = "10%"\n')
    result = cli("rag", "index", "-", "--config", "f.toml", "--out", "runs/i", "--json", input="docs\nnotes\n")
    assert result.exit_code == 0, result.stderr
    summary = result.json_lines()[-1]
    assert summary["unchanged"] == 5 and summary["run_dir"].endswith("runs/i") and summary["index"] == ".tlcli-index"
    saved = json.loads(Path("runs/i/config.json").read_text())
    assert (saved["max_file_mb"], saved["batch_size"], saved["max_bad"]) == (5.0, 8, 0.1)
    assert saved["paths"] == ["docs", "notes"]  # what stdin named, so --config config.json runs it again
    assert json.loads(Path("runs/i/metrics.json").read_text())["command"] == "rag index"
    from tlcli.cli.command import to_toml

    Path("again.toml").write_text(to_toml(saved))
    again = cli("rag", "index", "--config", "again.toml", "--print-config")
    assert again.exit_code == 0 and 'paths = ["docs", "notes"]' in again.stdout


@pytest.mark.parametrize("args, expected", [
    (["rag", "index", "docs", "--overlap", "100"], "--overlap 100 must be under half of --chunk-tokens (200)"),
    (["rag", "index", "docs", "--index-type", "ivf"], "--index-type"),
    (["rag", "index", "docs", "--resume", "runs/x"], "--resume"),  # an index build is re-run, not resumed
    (["rag", "search", "x", "--mode", "semantic"], "--mode"),
    (["rag", "search", "x", "--filter", "size>3"], "--filter"),
    (["rag", "eval", "--qrels", "q.jsonl", "--mode", "dense,fuzzy"], "--mode"),
    (["rag", "ask"], "missing QUESTION"),
])
def test_bad_options_are_one_line_exit_2_and_leave_nothing(cli, tmp_path, args, expected):
    result = cli(*args)
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()
