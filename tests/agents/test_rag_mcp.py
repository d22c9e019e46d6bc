"""The MCP tool path against the rag plugin's own server (`tlcli rag serve`), when that plugin is installed.

The agents plugin never imports the rag plugin: the server is started as a command, like any MCP server."""

from __future__ import annotations

import shlex
import sys

import pytest

from support.agents import events_of, last_json


def rag_installed() -> bool:
    from tlcli.registry import load_plugins

    return load_plugins().get("rag") is not None


@pytest.mark.slow  # indexing loads the sentence encoder; the server loads it again
@pytest.mark.skipif(not rag_installed(), reason="the rag plugin is not installed")
def test_solver_searches_a_rag_index_through_rag_serve(cli, use_llm, fake_llm, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lighthouse.md").write_text("# Keepers\n\nThe lighthouse keeper's cat is called Biscuit.\n")
    (docs / "weather.md").write_text("# Weather\n\nFog rolls in most mornings in October.\n")
    indexed = cli("rag", "index", str(docs), "--index", str(tmp_path / "idx"))
    assert indexed.exit_code == 0, indexed.stderr
    # Lexical search: the server answers without loading the encoder a second time.
    search = {"name": "search", "arguments": {"query": "lighthouse keeper cat", "k": 2, "mode": "lexical"}}
    use_llm(fake_llm(["1. search the notes", {"tool_calls": [search]}, "The cat is called Biscuit.", "APPROVE"],
                     supports_tools=True))
    command = shlex.join([sys.executable, "-m", "tlcli", "rag", "serve", "--index", str(tmp_path / "idx")])
    result = cli("agents", "solve", "What is the keeper's cat called?", "--llm", "fake:", "--tools",
                 f"mcp:{command}#search", "--out", "runs/rag", "--json")
    assert result.exit_code == 0, result.stderr
    assert last_json(result.stdout)["answer"] == "The cat is called Biscuit."
    (found,) = [e["data"] for e in events_of("runs/rag") if e["kind"] == "message" and e["data"]["role"] == "tool"]
    assert found["ok"] and found["tool_name"] == "search"
    assert "Biscuit" in found["content"] and "lighthouse.md" in found["content"]
