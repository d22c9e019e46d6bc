"""Queries are bounded in size on every way in: `rag search`, the MCP server's tools, the agents' rag tool."""

from __future__ import annotations

import asyncio

import pytest

from tlcli_rag.search import MAX_QUERY_CHARS


@pytest.fixture
def in_small(small_copy, cli, monkeypatch):
    monkeypatch.chdir(small_copy)
    return small_copy


def test_rag_search_refuses_a_huge_query_in_one_line(in_small, cli):
    result = cli("rag", "search", "x" * (MAX_QUERY_CHARS + 1), "--mode", "lexical")
    assert result.exit_code == 2 and "at most 4,096" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli("rag", "search", "E4021 " * 500, "--mode", "lexical").exit_code == 0  # 3,000 characters: fine


def call(server, name: str, arguments: dict):
    try:
        return "ok", asyncio.run(server.call_tool(name, arguments))
    except Exception as error:  # FastMCP raises ToolError for a refused call when called in-process
        return "error", str(error)


def test_mcp_tools_bound_the_query_the_filters_and_the_id(in_small):
    pytest.importorskip("mcp")
    from tlcli_rag.mcp_server import build_server

    server = build_server(in_small / ".tlcli-index")
    status, message = call(server, "search", {"query": "x" * 10_000_000, "mode": "lexical"})
    assert status == "error" and "at most 4,096" in message
    status, message = call(server, "search", {"query": "x", "mode": "lexical", "filters": ["source=*"] * 1000})
    assert status == "error" and "at most 32 filters" in message
    status, message = call(server, "fetch_chunk", {"id": 10**30})
    assert status == "error" and "no chunk" in message
    status, _ = call(server, "search", {"query": "E4021", "mode": "lexical"})
    assert status == "ok"


def test_the_agents_rag_tool_reports_a_huge_query_to_the_model(in_small):
    from tlcli_rag.tool import rag_tools

    search = {t.name: t for t in rag_tools(str(in_small / ".tlcli-index"))}["rag_search"]
    with pytest.raises(Exception, match="at most 4,096"):
        search.run({"query": "x" * 100_000, "mode": "lexical"})
