"""A tiny MCP server over stdio for the tests: two tools, one of which the tests never allow-list."""

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


if __name__ == "__main__":
    server.run()
