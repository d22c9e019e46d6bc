"""Registration only: nothing heavy is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin


def register_commands(app) -> None:
    from tlcli_rag import commands

    commands.register(app)


plugin = Plugin(
    name="rag",
    register_commands=register_commands,
    tools={"rag": "tlcli_rag.tool:rag_tools"},
    description="Retrieval over your documents: FAISS + SQLite index (no pickle), hybrid search, cited answers, MCP.",
    help_panel="RAG",
)
