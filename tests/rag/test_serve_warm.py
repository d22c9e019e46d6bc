"""`rag serve` loads what a search needs before it answers, so the first search is not the slow one."""

from __future__ import annotations

import asyncio

import numpy as np

import tlcli_rag.search as search_module
from tlcli.models.embedder import TextEmbedder
from tlcli_rag.mcp_server import build_server


def test_the_server_loads_model_and_index_once_before_serving_and_only_when_asked(small_copy, monkeypatch):
    calls, reads = [], []

    def encode(self, texts, progress=None):
        calls.append(list(texts))
        return np.zeros((len(texts), 384), dtype=np.float32)

    real_read = search_module.read_faiss

    def read_faiss(*args):
        reads.append(args[1].faiss_name)
        return real_read(*args)

    monkeypatch.setattr(TextEmbedder, "encode", encode)
    monkeypatch.setattr(search_module, "read_faiss", read_faiss)
    build_server(small_copy / ".tlcli-index")
    assert calls == [] and reads == []  # a plain build (tests, embedding hosts) stays lazy
    server = build_server(small_copy / ".tlcli-index", warm_up=True)
    assert calls == [["warm-up"]] and len(reads) == 1
    # The client's first search embeds its query and nothing else: the model and the FAISS file are loaded.
    asyncio.run(server.call_tool("search", {"query": "what does E4021 mean", "k": 2}))
    assert calls == [["warm-up"], ["what does E4021 mean"]] and len(reads) == 1
