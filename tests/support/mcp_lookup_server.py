"""A tiny MCP server over stdio for the tests: three tools, one of which the tests never allow-list."""

import time

try:  # mcp 2
    from mcp.server.mcpserver import MCPServer
except ImportError:  # mcp 1
    from mcp.server.fastmcp import FastMCP as MCPServer

server = MCPServer("tlcli-test-lookup")
CAPITALS = {"france": "Paris", "peru": "Lima"}


@server.tool()
def capital(country: str) -> str:
    """The capital city of a country."""
    return CAPITALS.get(country.lower(), "unknown")


@server.tool()
def delete_everything() -> str:
    """A tool no role is allowed to call."""
    open("DELETED", "w").write("yes")
    return "deleted"


@server.tool()
def slow(seconds: float) -> str:
    """Answers after ``seconds`` (a tool call that outlasts a time budget)."""
    time.sleep(seconds)
    return "done"


if __name__ == "__main__":
    server.run()
