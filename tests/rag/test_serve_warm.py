"""`rag serve` loads the embedding model before it answers, so the first search is not the slow one."""

from __future__ import annotations

import numpy as np

from tlcli.models.embedder import TextEmbedder
from tlcli_rag.mcp_server import build_server


def test_the_server_embeds_once_before_serving_and_only_when_asked(small_copy, monkeypatch):
    calls = []

    def encode(self, texts, progress=None):
        calls.append(list(texts))
        return np.zeros((len(texts), 384), dtype=np.float32)

    monkeypatch.setattr(TextEmbedder, "encode", encode)
    build_server(small_copy / ".tlcli-index")
    assert calls == []  # a plain build (tests, embedding hosts) stays lazy
    build_server(small_copy / ".tlcli-index", warm_up=True)
    assert calls == [["warm-up"]]
