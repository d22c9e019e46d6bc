"""The text-embedding cache is input too: rows of the wrong width, all-zero rows or non-unit rows are
computed again with a warning (`text zeroshot` printed cosine 7.0 and labelled everything the same)."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tlcli.models.embedder import Embedder

TEXTS = ["a cached sentence", "another one", "a third"]


@pytest.mark.parametrize("damage", ["wide", "zeros", "long"])
def test_damaged_cache_rows_are_recomputed(tmp_path, monkeypatch, minilm_dir, capsys, damage):
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    first = Embedder().encode(TEXTS)
    [shard] = Embedder().cache_folder.glob("*.safetensors")
    rows = load_file(str(shard))["embeddings"]
    if damage == "wide":  # unit rows, but twice the model's width
        rows = np.concatenate([rows, rows], axis=1) / np.sqrt(2)
    elif damage == "zeros":
        rows = np.zeros_like(rows)
    else:
        rows = rows * 7
    save_file({"embeddings": np.ascontiguousarray(rows.astype(np.float32))}, str(shard))
    again = Embedder().encode(TEXTS)
    assert again.shape == first.shape
    np.testing.assert_allclose(again, first, atol=1e-5)
    assert "text-embedding cache" in capsys.readouterr().err
