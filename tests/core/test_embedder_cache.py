"""The text-embedding cache reads only the rows a call needs and never serves a corrupt row."""

from __future__ import annotations

import numpy as np
import pytest

from tlcli.models.embedder import Embedder


class CountingEmbedder(Embedder):
    """The real cache logic with a stand-in model: row i of the 'model' is a fixed function of the text."""

    embedded: list[str]

    def _embed(self, texts):
        self.embedded = getattr(self, "embedded", []) + list(texts)
        rows = np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path))
    return tmp_path


def test_second_embedder_reads_only_the_rows_it_needs(home):
    first = CountingEmbedder(model="fake-model")
    for shard in (["a", "bb", "ccc"], ["dddd", "eeeee"], ["ffffff"]):
        first.encode(shard)
    expected = first.encode(["eeeee", "a"])

    second = CountingEmbedder(model="fake-model")
    got = second.encode(["eeeee", "a"])
    np.testing.assert_array_equal(got, expected)
    assert getattr(second, "embedded", []) == []  # nothing recomputed
    assert len(second._memory) == 2  # only the two rows asked for were read


def test_a_corrupt_row_is_recomputed(home):
    first = CountingEmbedder(model="fake-model")
    good = first.encode(["x", "y"])
    shard = next((home / "text-embeddings").rglob("*.safetensors"))
    from safetensors.numpy import load_file, save_file

    rows = load_file(str(shard))["embeddings"]
    rows[1] = np.nan
    save_file({"embeddings": rows}, str(shard))
    second = CountingEmbedder(model="fake-model")
    again = second.encode(["x", "y"])
    assert second.embedded == ["y"]
    np.testing.assert_array_equal(again, good)
