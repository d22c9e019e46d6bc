"""Registration only: the commands are declared by import path, nothing is imported here."""

from __future__ import annotations

from tlcli.plugin import Plugin

plugin = Plugin(
    name="rag",
    commands={
        "rag index": ("tlcli_rag.cli:INDEX", "Index documents (.txt .md .rst .html .pdf .py .ipynb .json .jsonl); "
                      "re-runs embed only what changed."),
        "rag search": ("tlcli_rag.cli:SEARCH", "Search the index: one line per hit with source, lines and heading."),
        "rag ask": ("tlcli_rag.cli:ASK", "Answer a question from retrieved passages with numbered citations (needs "
                    "--llm)."),
        "rag eval": ("tlcli_rag.cli:EVAL", "recall@k, MRR@k and nDCG@k of dense, lexical and hybrid search on a "
                     "qrels file."),
        "rag info": ("tlcli_rag.cli:INFO", "What an index holds: files, chunks, model, dimension, index type, size."),
        "rag serve": ("tlcli_rag.cli:SERVE", "Serve the index over MCP (stdio) with `search` and `fetch_chunk` tools."),
    },
    groups={"rag": "Retrieval over your documents: a FAISS index with a SQLite sidecar (no pickle), hybrid search, "
                   "cited answers."},
    tools={"rag": "tlcli_rag.tool:rag_tools"},
    description="Retrieval over your documents: FAISS + SQLite index (no pickle), hybrid search, cited answers, MCP.",
    help_panel="RAG",
)
