"""`tlcli rag serve` answers an MCP client over stdio."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest


def failed(result) -> bool:
    # mcp 1.x spells it isError, 2.x is_error
    return bool(getattr(result, "is_error", getattr(result, "isError", None)))


@pytest.mark.slow  # a server process loading torch and the model: ~20 s on a quiet machine
def test_mcp_search_and_fetch_chunk(small_index, tmp_path):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "tlcli", "rag", "serve"],
                                   cwd=str(small_index), env={**os.environ, "HF_HUB_OFFLINE": "1"})

    # stdio_client's default errlog is whatever sys.stderr was when mcp was first imported (under an in-process
    # CLI test that is a capture buffer with no file descriptor): give the server's stderr a real file.
    errlog = open(tmp_path / "server-stderr.log", "w", encoding="utf-8")

    async def talk():
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name for tool in (await session.list_tools()).tools}
                found = await session.call_tool("search", {"query": "what does E4021 mean", "k": 2})
                hits = json.loads(found.content[0].text)["hits"]
                chunk = await session.call_tool("fetch_chunk", {"id": hits[0]["id"]})
                missing = await session.call_tool("fetch_chunk", {"id": 999999})
                return tools, failed(found), hits, json.loads(chunk.content[0].text), failed(missing)

    tools, error, hits, chunk, missing_is_error = asyncio.run(asyncio.wait_for(talk(), timeout=240))
    assert tools == {"search", "fetch_chunk"}
    assert not error and len(hits) == 2
    assert hits[0]["source"] == "docs/errors.md" and "E4021" in hits[0]["text"]
    assert chunk["source"] == "docs/errors.md" and chunk["text"] == hits[0]["text"]
    assert missing_is_error
