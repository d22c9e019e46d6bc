"""Searching an index: dense (FAISS), lexical (SQLite FTS5 BM25) and hybrid (reciprocal rank fusion).

Filters select the allowed chunk ids in SQLite first; the dense search then runs only over those ids
(``SearchParameters(sel=IDSelectorBatch(...))``), so a filtered query returns k hits whenever k chunks
pass the filter -- unlike filtering the top k afterwards, which returns fewer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tlcli.console.errors import UsageError
from tlcli_rag.store import (HNSW_EF_SEARCH, Manifest, check_generation, connect_readonly, read_faiss,
                             require_manifest, sqlite_errors, verify_generation)

MODES = ("dense", "lexical", "hybrid")
MAX_QUERY_CHARS = 4096  # far past what the model embeds (256 tokens); a bigger "query" is a document or an attack
MAX_FILTERS = 32
MAX_CHUNK_ID = 2**63 - 1  # SQLite's INTEGER
RRF_K = 60  # the constant of Cormack et al. (2009); ranks deeper than ~60 barely count
# English function words dropped from lexical queries: in an OR query they match nearly every chunk and
# drown the words that matter. Python keywords (and, or, not, in, is, if, for...) are deliberately kept.
STOPWORDS = frozenset("""a an the of to do does did how what which when where why who whom i you we my your
it its this that these those be been are was were can could should would will may might me us they them their
there here than then so such some any very just also about into onto over under up down out on at by from
with as""".split())


@dataclass(frozen=True)
class Filter:
    """``field op value``: source=GLOB, heading=GLOB, mtime>DATE (also <, >=, <=)."""

    field: str
    op: str
    value: str | float

    def sql(self) -> tuple[str, list]:
        if self.field == "source":
            return ("c.path GLOB ?", [self.value]) if self.op == "=" else ("NOT c.path GLOB ?", [self.value])
        if self.field == "heading":
            return ("c.heading GLOB ?", [self.value]) if self.op == "=" else ("NOT c.heading GLOB ?", [self.value])
        return (f"f.mtime {self.op} ?", [self.value])


_FILTER = re.compile(r"^\s*(source|heading|mtime)\s*(!=|>=|<=|=|>|<)\s*(.+?)\s*$")


def parse_filter(text: str) -> Filter:
    match = _FILTER.match(text)
    if not match:
        raise UsageError(f"--filter {text!r}: expected source=GLOB, heading=GLOB or mtime>DATE "
                         "(ops = != for globs; > >= < <= for mtime), e.g. --filter 'source=docs/*.md'")
    field, op, value = match.groups()
    if field in ("source", "heading"):
        if op not in ("=", "!="):
            raise UsageError(f"--filter {text!r}: {field} takes = or != with a glob, e.g. {field}=docs/*")
        return Filter(field, op, value)
    if op in ("=", "!="):
        raise UsageError(f"--filter {text!r}: mtime takes > >= < <=, e.g. 'mtime>2026-01-01'")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--filter {text!r}: {value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM "
                         "(UTC unless it names a zone)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return Filter(field, op, when.timestamp())


@dataclass
class Hit:
    rank: int
    score: float
    id: int
    source: str
    start: int
    end: int
    line_start: int
    line_end: int
    heading: str
    text: str

    @property
    def lines(self) -> str:
        return f"{self.line_start}-{self.line_end}"

    @property
    def citation(self) -> str:
        return f"{self.source}:{self.lines}"

    def record(self) -> dict:
        return {"rank": self.rank, "score": round(float(self.score), 6), "id": self.id, "source": self.source,
                "start": self.start, "end": self.end, "lines": self.lines, "heading": self.heading,
                "text": self.text}


class IndexReader:
    """A read-only view of one published generation of an index folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.manifest: Manifest = require_manifest(self.folder)
        check_generation(self.folder, self.manifest)
        self.db = connect_readonly(self.folder / self.manifest.sqlite_name)
        self._index = None

    def close(self) -> None:
        self.db.close()

    def rows(self, sql: str, params=()) -> list:
        """All rows of a query; a damaged SQLite file is one line naming it and the fix."""
        with sqlite_errors(self.folder, self.manifest):
            return self.db.execute(sql, params).fetchall()

    def verify(self) -> None:
        """Read and check all of this generation (``rag info``): a truncated index is not reported as fine."""
        verify_generation(self.folder, self.manifest)

    @property
    def index(self):
        if self._index is None:
            self._index = read_faiss(self.folder, self.manifest, self.counts()[1])
        return self._index

    def counts(self) -> tuple[int, int]:
        files = self.rows("SELECT COUNT(*) FROM files")[0][0]
        chunks = self.rows("SELECT COUNT(*) FROM chunks")[0][0]
        return files, chunks

    # --- filters -----------------------------------------------------------------------------------

    def allowed_ids(self, filters: list[Filter]) -> np.ndarray | None:
        """Chunk ids passing every filter, or None when there are no filters (everything passes)."""
        if not filters:
            return None
        where, params = _where(filters)
        rows = self.rows(f"SELECT c.id FROM chunks c JOIN files f ON f.path = c.path WHERE {where}", params)
        return np.fromiter((row[0] for row in rows), dtype=np.int64)

    # --- dense -------------------------------------------------------------------------------------

    def dense(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """Top ``k`` (id, inner product) per query vector, among ``allowed`` ids when given."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in vectors]
        index = self.index
        k_eff = min(k, index.ntotal if allowed is None else len(allowed))
        if k_eff == 0:
            return [[] for _ in vectors]
        params = self._search_params(allowed, k_eff)
        scores, ids = index.search(vectors, k_eff, params=params)
        results = [[(int(i), float(s)) for s, i in zip(row_s, row_i) if i >= 0] for row_s, row_i in zip(scores, ids)]
        if allowed is not None and self.manifest.index_type != "flat":
            # A graph or an inverted list can run out of allowed neighbours before finding k of them;
            # those queries are answered exactly over the allowed ids instead.
            for q, found in enumerate(results):
                if len(found) < k_eff:
                    results[q] = self._exact_over(vectors[q], allowed, k_eff)
        return results

    def _search_params(self, allowed: np.ndarray | None, k: int):
        import faiss

        selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
        kind = self.manifest.index_type
        if kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, 2 * k))
        if kind == "ivf-pq":
            inner = faiss.extract_index_ivf(self.index.index)
            return faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _exact_over(self, vector: np.ndarray, allowed: np.ndarray, k: int) -> list[tuple[int, float]]:
        index = self.index
        if self.manifest.index_type == "ivf-pq":
            import faiss

            inner = faiss.extract_index_ivf(index.index)
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(allowed), nprobe=inner.nlist)
            scores, ids = index.search(vector[None], k, params=params)
            return [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]
        vectors = np.stack([index.reconstruct(int(i)) for i in allowed])
        scores = vectors @ vector
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(allowed[t]), float(scores[t])) for t in top]

    # --- lexical -----------------------------------------------------------------------------------

    def lexical(self, query: str, k: int, filters: list[Filter]) -> list[tuple[int, float]]:
        """Top ``k`` (id, -BM25) by FTS5 over the chunk text and heading; any query word may match."""
        words = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
        words = [w for w in words if w not in STOPWORDS] or words
        if not words:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        where, params = _where(filters) if filters else ("1", [])
        rows = self.rows(
            "SELECT c.id, bm25(chunks_fts, 1.0, 2.0) AS rank FROM chunks_fts "
            "JOIN chunks c ON c.id = chunks_fts.rowid JOIN files f ON f.path = c.path "
            f"WHERE chunks_fts MATCH ? AND {where} ORDER BY rank LIMIT ?", [match, *params, k])
        return [(int(row[0]), -float(row[1])) for row in rows]

    # --- results -----------------------------------------------------------------------------------

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        ids = [i for i, _ in ranked]
        marks = ",".join("?" * len(ids))
        rows = {row["id"]: row for row in self.rows(
            f'SELECT id, path, start, "end", line_start, line_end, heading, text FROM chunks WHERE id IN ({marks})',
            ids)}
        out = []
        for rank, (i, score) in enumerate(ranked, start=1):
            row = rows.get(i)
            if row is None:
                continue
            out.append(Hit(rank, score, i, row["path"], row["start"], row["end"], row["line_start"],
                           row["line_end"], row["heading"], row["text"]))
        return out

    def chunk(self, chunk_id: int) -> Hit | None:
        if not 0 <= int(chunk_id) <= MAX_CHUNK_ID:
            return None
        found = self.hits([(int(chunk_id), 0.0)])
        return found[0] if found else None


def check_query_size(queries: list[str]) -> None:
    """A query longer than MAX_QUERY_CHARS is refused (the model would read only its start anyway)."""
    for query in queries:
        if len(query) > MAX_QUERY_CHARS:
            raise UsageError(f"a query of {len(query):,} characters: at most {MAX_QUERY_CHARS:,}; search with the "
                             "words that matter")


def _where(filters: list[Filter]) -> tuple[str, list]:
    parts, params = [], []
    for f in filters:
        sql, values = f.sql()
        parts.append(sql)
        params += values
    return " AND ".join(parts), params


def rrf(rankings: list[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(id) = sum over rankings of 1 / (RRF_K + rank)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (i, _) in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]


class Searcher:
    """Queries against one index with its own embedding model (loaded on the first dense query)."""

    def __init__(self, folder: Path, *, model: str | None = None, device: str = "cpu", precision: str = "auto"):
        from tlcli_rag.store import check_model

        self.reader = IndexReader(folder)
        manifest = self.reader.manifest
        check_model(manifest, model, self.reader.folder)
        self.device = device
        self.precision = precision
        self._embedder = None

    @property
    def embedder(self):
        if self._embedder is None:
            from tlcli.models.embedder import TextEmbedder
            from tlcli_rag.store import check_model_unchanged

            check_model_unchanged(self.reader.manifest, self.reader.folder)

            self._embedder = TextEmbedder(self.reader.manifest.model, device=self.device, precision=self.precision,
                                          queries=True)
        return self._embedder

    def search(self, queries: list[str], k: int = 5, mode: str = "hybrid",
               filters: list[Filter] | None = None) -> list[list[Hit]]:
        """Hits for each query; dense queries are embedded in one batch."""
        if mode not in MODES:
            raise UsageError(f"--mode {mode}: expected one of {', '.join(MODES)}")
        check_query_size(queries)
        filters = filters or []
        if len(filters) > MAX_FILTERS:
            raise UsageError(f"{len(filters)} filters: at most {MAX_FILTERS}")
        allowed = self.reader.allowed_ids(filters) if mode != "lexical" else None
        depth = k if mode != "hybrid" else max(50, 4 * k)
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        lexical: list[list[tuple[int, float]]] = [[] for _ in queries]
        if mode != "lexical":
            vectors = self.embedder.encode(queries)
            dense = self.reader.dense(vectors, depth, allowed)
        if mode != "dense":
            lexical = [self.reader.lexical(q, depth, filters) for q in queries]
        out = []
        for d, lex in zip(dense, lexical):
            ranked = d[:k] if mode == "dense" else lex[:k] if mode == "lexical" else rrf([d, lex], k)
            out.append(self.reader.hits(ranked))
        return out
