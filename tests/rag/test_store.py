"""The store and the dense/lexical search on synthetic vectors (no model): exactness, pre-filtering,
deletions, generations."""

from __future__ import annotations

import numpy as np
import pytest

from tlcli.data.documents import Chunk
from tlcli.console.errors import UsageError
from tlcli_rag.search import IndexReader, parse_filter, rrf
from tlcli_rag.store import FileRecord, IndexWriter, Manifest, faiss_ids, read_manifest

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def make_index(folder, files: dict[str, int], index_type="flat", seed=0, generation=1, vectors=None):
    """An index of ``files`` (name -> number of chunks) with random unit vectors; returns the vectors by id."""
    rng = np.random.default_rng(seed)
    total = sum(files.values())
    vectors = unit(rng.normal(size=(total, DIM))) if vectors is None else vectors
    manifest = Manifest(generation=generation, model="fake", model_key="fake-key", dimension=DIM,
                        index_type=index_type, chunk_tokens=200, overlap=30)
    with IndexWriter(folder) as writer:
        writer.begin(manifest, fresh=True, training=vectors if index_type == "ivf-pq" else None)
        row = 0
        for name, count in files.items():
            chunks = [Chunk(name, i * 10, i * 10 + 9, i + 1, i + 1, ("H",), f"{name} chunk {i} word{row + i}")
                      for i in range(count)]
            writer.add_file(FileRecord(name, "0" * 64, 1, 1.0), chunks, vectors[row:row + count])
            row += count
        writer.commit()
    return vectors


def test_flat_search_equals_exact_numpy(tmp_path):
    vectors = make_index(tmp_path / "ix", {"a.txt": 300, "b.txt": 200})
    reader = IndexReader(tmp_path / "ix")
    queries = unit(np.random.default_rng(1).normal(size=(20, DIM)))
    results = reader.dense(queries, 10)
    for query, found in zip(queries, results):
        scores = vectors @ query
        expected = np.argsort(-scores, kind="stable")[:10] + 1  # ids start at 1
        assert [i for i, _ in found] == expected.tolist()
        np.testing.assert_allclose([s for _, s in found], scores[expected - 1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_filter_runs_before_the_vector_search(tmp_path, index_type):
    # 1000 chunks in big.txt, 12 in rare.txt: the query's 10 nearest neighbours are all in big.txt.
    vectors = make_index(tmp_path / "ix", {"big.txt": 1000, "rare.txt": 12}, index_type=index_type)
    reader = IndexReader(tmp_path / "ix")
    query = vectors[:5].mean(0, keepdims=True)
    query /= np.linalg.norm(query)
    unfiltered = reader.dense(query, 10)[0]
    rare_ids = set(range(1001, 1013))
    post_filtered = [i for i, _ in unfiltered if i in rare_ids]  # what filtering after the search gives
    allowed = reader.allowed_ids([parse_filter("source=rare*")])
    assert sorted(allowed.tolist()) == sorted(rare_ids)
    pre_filtered = reader.dense(query, 10, allowed)[0]
    assert len(post_filtered) < 10
    assert len(pre_filtered) == 10 and {i for i, _ in pre_filtered} <= rare_ids
    expected = sorted(rare_ids, key=lambda i: -float(vectors[i - 1] @ query[0]))[:10]
    assert [i for i, _ in pre_filtered] == expected
    # Asking for more than exist gives all that exist.
    assert len(reader.dense(query, 50, allowed)[0]) == 12


def test_filters_parse_and_refuse_in_one_line():
    assert parse_filter("source=docs/*.md").value == "docs/*.md"
    assert parse_filter("mtime>2026-01-01").value == pytest.approx(1767225600.0)
    for bad in ("size>3", "mtime=2026-01-01", "mtime>yesterday", "source>x"):
        with pytest.raises(UsageError):
            parse_filter(bad)


def test_lexical_search_with_filter(tmp_path):
    make_index(tmp_path / "ix", {"a.txt": 3, "b.txt": 3})
    reader = IndexReader(tmp_path / "ix")
    hits = reader.hits(reader.lexical("word4", 5, []))
    assert [(h.source, h.text) for h in hits] == [("b.txt", "b.txt chunk 1 word4")]
    assert reader.lexical("word4", 5, [parse_filter("source=a.txt")]) == []
    assert reader.lexical("the", 5, []) == []  # stopwords alone still search, and match nothing here


def test_rrf_fuses_ranks():
    fused = rrf([[(1, 0.9), (2, 0.8), (3, 0.7)], [(3, 5.0), (1, 4.0)]], 3)
    assert [i for i, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", pytest.param("ivf-pq", marks=pytest.mark.slow)])
def test_removing_a_file_removes_its_vectors(tmp_path, index_type):
    files = {"a.txt": 1500, "b.txt": 1000} if index_type == "ivf-pq" else {"a.txt": 40, "b.txt": 30}
    vectors = make_index(tmp_path / "ix", files, index_type=index_type)
    old = read_manifest(tmp_path / "ix")
    with IndexWriter(tmp_path / "ix") as writer:
        writer.begin(Manifest(**{**old.__dict__, "generation": 2}), fresh=False)
        removed = writer.remove_files(["a.txt"])
        writer.commit()
    assert removed == files["a.txt"]
    reader = IndexReader(tmp_path / "ix")
    assert sorted(faiss_ids(reader.index).tolist()) == list(range(files["a.txt"] + 1, sum(files.values()) + 1))
    found = reader.dense(vectors[:3], 5)
    assert all(i > files["a.txt"] for row in found for i, _ in row)
    assert reader.counts() == (1, files["b.txt"])
    # The old generation's files are gone; only the new ones remain.
    names = sorted(p.name for p in (tmp_path / "ix").iterdir())
    assert names == ["gen-000002.faiss", "gen-000002.sqlite", "lock", "manifest.json"]


def test_leftovers_of_a_crash_are_removed_and_the_old_generation_kept(tmp_path):
    make_index(tmp_path / "ix", {"a.txt": 5})
    (tmp_path / "ix" / "gen-000002.sqlite.tmp-999").write_bytes(b"half")
    (tmp_path / "ix" / "gen-000002.faiss").write_bytes(b"renamed but never published")
    with IndexWriter(tmp_path / "ix"):
        pass
    names = sorted(p.name for p in (tmp_path / "ix").iterdir())
    assert names == ["gen-000001.faiss", "gen-000001.sqlite", "lock", "manifest.json"]


def test_a_second_writer_is_refused(tmp_path):
    make_index(tmp_path / "ix", {"a.txt": 2})
    with IndexWriter(tmp_path / "ix"):
        with pytest.raises(UsageError, match="another"):
            IndexWriter(tmp_path / "ix")


def test_a_foreign_folder_is_not_used_as_an_index(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not a tlcli index"):
        IndexWriter(tmp_path / "mine")
