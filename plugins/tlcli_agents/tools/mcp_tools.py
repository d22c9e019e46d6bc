"""``mcp:COMMAND#TOOL,TOOL``: the tools of an MCP server started over stdio, each allow-listed by name.

The MCP client is asynchronous; the solver is not. The session lives on an event loop in one background
thread and calls are handed to it; ``close`` ends the session and the server process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import tempfile
import threading
from concurrent.futures import Future

from tlcli.console.errors import UsageError
from tlcli_agents.tools import Tool, ToolError

CONNECT_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0


# Passed on to the server on top of the SDK's minimal environment (PATH, HOME, ...): where Python and tlcli
# find their packages, caches and offline switches. Never API keys or tokens.
PASSED_ON = ("PYTHONPATH", "VIRTUAL_ENV", "TLCLI_HOME", "TLCLI_PLUGINS", "TLCLI_CONFIG", "HF_HOME",
             "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TMPDIR", "LANG", "LC_ALL")


def server_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_ON if name in os.environ}


def parse_mcp_spec(spec: str) -> tuple[list[str], list[str]]:
    command, _, names = spec.rpartition("#") if "#" in spec else (spec, "", "")
    argv = shlex.split(command)
    if not argv:
        raise UsageError(f"--tools mcp:{spec}: no command; write mcp:'COMMAND ARGS'#TOOL,TOOL")
    return argv, [n.strip() for n in names.split(",") if n.strip()]


class MCPConnection:
    """One stdio MCP session on a private event loop thread."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-client", daemon=True)
        self._thread.start()
        self._ready: Future = Future()
        self._closing: asyncio.Event | None = None
        self._session = None
        # The server's own stderr goes to a file, not over the transcript; its tail explains a failed start.
        self.errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self._main = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)

    async def _serve(self) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        self._closing = asyncio.Event()
        params = StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=server_environment())
        try:
            async with stdio_client(params, errlog=self.errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    self._session = session
                    self._ready.set_result(await session.list_tools())
                    await self._closing.wait()
        except BaseException as error:  # start-up failures are reported to the waiting caller
            if not self._ready.done():
                self._ready.set_exception(error)
            if not isinstance(error, Exception):
                raise

    def tools(self):
        try:
            return self._ready.result(timeout=CONNECT_TIMEOUT_S).tools
        except Exception as error:
            said = self.stderr_tail()
            self.close()
            raise UsageError(f"--tools mcp:{shlex.join(self.argv)}: the MCP server did not start "
                             f"({type(error).__name__}: {error}){'; it said: ' + said if said else ''}; "
                             "check the command runs on its own") from None

    def stderr_tail(self, lines: int = 3) -> str:
        try:
            self.errlog.flush()
            self.errlog.seek(0)
            tail = [line.strip() for line in self.errlog.read()[-4000:].splitlines() if line.strip()][-lines:]
        except (OSError, ValueError):
            return ""
        return " / ".join(tail)

    def call(self, name: str, arguments: dict) -> str:
        from tlcli.llm.transport import time_left

        left = time_left()  # the run's time budget (agents solve --timeout) bounds a tool call too
        seconds = CALL_TIMEOUT_S if left is None else max(0.0, min(CALL_TIMEOUT_S, left))
        future = asyncio.run_coroutine_threadsafe(self._session.call_tool(name, arguments), self._loop)
        try:
            result = future.result(timeout=seconds)
        except TimeoutError:
            future.cancel()
            why = "before the time budget ran out (--timeout)" if seconds < CALL_TIMEOUT_S else f"in {seconds:g} s"
            raise ToolError(f"MCP tool {name} gave no answer {why}") from None
        except Exception as error:
            raise ToolError(f"MCP tool {name} failed: {error}") from None
        parts = []
        for block in getattr(result, "content", None) or []:
            text = getattr(block, "text", None)
            parts.append(text if isinstance(text, str) else json.dumps(block.model_dump(mode="json")))
        text = "\n".join(parts)
        if getattr(result, "is_error", False) or getattr(result, "isError", False):
            raise ToolError(f"MCP tool {name} reported an error: {text}")
        return text

    def close(self) -> None:
        if self._closing is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._closing.set)
            try:
                self._main.result(timeout=10)
            except Exception:
                pass
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self.errlog.close()


def mcp_tools(spec: str) -> tuple[list[Tool], callable]:
    argv, allowed = parse_mcp_spec(spec)
    connection = MCPConnection(argv)
    offered = {t.name: t for t in connection.tools()}
    if not allowed or set(allowed) - set(offered):
        connection.close()
        missing = sorted(set(allowed) - set(offered))
        what = f"does not offer {', '.join(missing)}" if missing else "needs its tools allow-listed by name"
        raise UsageError(f"--tools mcp:{spec}: the server {what}; it offers {', '.join(sorted(offered)) or 'none'}: "
                         f"write mcp:'{shlex.join(argv)}#{','.join(sorted(offered)) or 'TOOL'}'")
    tools = []
    for name in allowed:
        tool = offered[name]
        schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {"type": "object"}
        tools.append(Tool(name, "mcp", tool.description or f"MCP tool {name}", dict(schema),
                          lambda arguments, _name=name: connection.call(_name, arguments)))
    return tools, connection.close
