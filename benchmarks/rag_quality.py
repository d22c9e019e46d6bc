"""Retrieval quality of `tlcli rag` by chunking: recall@3 and MRR@10 of dense, lexical and hybrid search.

    python benchmarks/rag_quality.py [--variants NAME|TOKENS/OVERLAP [merged|no-heading|collapsed],...]
                                     [--precision fp32] [--cache FILE] [--ranks] [--json]

Two corpora, made here from what is installed (nothing is downloaded): Python's documentation topics
(``pydoc_data.topics``, one file per topic) and the READMEs of 14 installed packages
(benchmarks/readmes.py). The questions (benchmarks/data/rag_questions.jsonl) were written by hand, each
with its *answer*: a sentence copied from the corpus. A hit is relevant when its chunk holds at least half
of an occurrence of the answer (the answer's characters, wherever the corpus repeats it), so the measure
does not depend on how the corpus is chunked; a question counts towards recall@3 when a relevant chunk is
among the first three hits, and towards MRR@10 with 1/rank of the first relevant hit in ten.

Each variant chunks both corpora, embeds the chunks with the real all-MiniLM-L6-v2 (``--precision``,
default fp32, so the table does not depend on the CPU's bf16), writes a real index (SQLite FTS5 + FAISS
flat, tlcli_rag.store) and searches it with tlcli_rag.search.Searcher -- the code `tlcli rag search`
runs. ``default`` is what `tlcli rag index` does now; the other variants change one thing at a time
(chunk size -- the overlap scaled with it --, overlap, whether the heading path is embedded with the
text, whether small sections share a chunk, whether identical hits are shown once).
Deterministic: the same corpus, model and precision give the same table. ``--cache`` keeps embeddings
between runs (keyed by text and precision).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "data" / "rag_questions.jsonl"
README_PACKAGES = ["rich", "typer", "httpx", "tqdm", "attrs", "faiss-cpu", "tokenizers", "peft", "datasets",
                   "pytest", "urllib3", "watchdog", "click", "filelock"]
MODEL = "all-MiniLM-L6-v2"
MODES = ("dense", "lexical", "hybrid")


# --- corpora and questions --------------------------------------------------------------------------

def write_corpora(work: Path) -> dict[str, Path]:
    """The two corpora as files under ``work``: {"pydoc": folder, "readmes": folder}."""
    from pydoc_data.topics import topics

    sys.path.insert(0, str(HERE))
    from readmes import collect

    pydoc = work / "pydoc" / "topics"
    pydoc.mkdir(parents=True)
    for name, text in topics.items():
        (pydoc / f"{name}.txt").write_text(text, encoding="utf-8")
    collect(work / "readmes", packages=README_PACKAGES)
    return {"pydoc": pydoc, "readmes": work / "readmes"}


def load_corpus(folder: Path):
    """The corpus's documents as `tlcli rag index` reads them (sources relative to ``folder``)."""
    from tlcli.data.documents import find_documents, load_document

    old = os.getcwd()
    os.chdir(folder)
    try:
        found, bad = find_documents(["."])
        assert not bad, bad
        return [load_document(f.path, f.source) for f in found]
    finally:
        os.chdir(old)


@dataclass(frozen=True)
class Question:
    corpus: str
    query: str
    answer: str
    spans: tuple[tuple[str, int, int], ...]  # every occurrence of the answer: (source, start, end)


def read_questions(documents: dict[str, list]) -> list[Question]:
    out = []
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        pattern = re.compile(r"\s+".join(re.escape(word) for word in record["answer"].split()))
        spans = tuple((d.source, m.start(), m.end()) for d in documents[record["corpus"]]
                      for m in pattern.finditer(d.text))
        if not spans:
            raise SystemExit(f"answer not found in the {record['corpus']} corpus: {record['answer']!r} "
                             "(a changed Python or package version?)")
        out.append(Question(record["corpus"], record["query"], record["answer"], spans))
    return out


def relevant(hit, question: Question) -> bool:
    for source, start, end in question.spans:
        if hit.source == source and min(hit.end, end) - max(hit.start, start) >= (end - start) / 2:
            return True
    return False


# --- chunking variants ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    name: str
    chunk_tokens: int | None = None  # None: the index's default
    overlap: int | None = None
    heading: str = "library"  # what is embedded with a chunk: library (its heading path, then its text) | none
    merge: bool | None = None  # small sections share a chunk (None: the library's default)
    collapse: bool = False  # a hit whose text equals a higher one's is dropped from the results

    def describe(self) -> str:
        return self.name


def variants(defaults) -> dict[str, Variant]:
    size, overlap = defaults["chunk_tokens"], defaults["overlap"]
    out = [Variant("default")]
    for tokens in (64, 96, 128, 160, 200, 254):
        if tokens != size:  # the overlap scaled with the chunk (the default's share of it)
            out.append(Variant(f"{tokens} tokens", chunk_tokens=tokens,
                               overlap=min(round(tokens * overlap / size), tokens // 2 - 1)))
    for lap in (0, 15, 30, 60):
        if lap != overlap and lap < size // 2:
            out.append(Variant(f"overlap {lap}", overlap=lap))
    out.append(Variant("no heading embedded", heading="none"))
    out.append(Variant("sections merged", merge=True))
    out.append(Variant("identical hits collapsed", collapse=True))
    return {v.name: v for v in out}


def parse_variant(spec: str, table: dict[str, Variant]) -> Variant:
    """A variant by name, or spelled ``TOKENS/OVERLAP`` with optional words ``merged``, ``apart`` (sections
    kept apart), ``no-heading``, ``collapsed`` (identical hits shown once): e.g. ``128/32 merged``."""
    spec = spec.strip()
    if spec in table:
        return table[spec]
    words = spec.split()
    try:
        tokens, overlap = (int(x) for x in words[0].split("/"))
    except ValueError:
        raise SystemExit(f"unknown variant {spec!r}: one of {', '.join(table)}, or TOKENS/OVERLAP [merged|apart] "
                         "[no-heading]") from None
    merge = True if "merged" in words else False if "apart" in words else None
    return Variant(spec, chunk_tokens=tokens, overlap=overlap, merge=merge, collapse="collapsed" in words,
                   heading="none" if "no-heading" in words else "library")


def library_defaults() -> dict:
    """A new index's chunking (`tlcli rag index` without --chunk-tokens/--overlap)."""
    try:
        from tlcli_rag.config import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP
    except ImportError:  # before the defaults were constants: the flags' own defaults
        from tlcli_rag.config import IndexConfig

        fields = IndexConfig.model_fields
        return {"chunk_tokens": fields["chunk_tokens"].default, "overlap": fields["overlap"].default}
    return {"chunk_tokens": DEFAULT_CHUNK_TOKENS, "overlap": DEFAULT_OVERLAP}


def chunk(variant: Variant, documents: list, tokenizer, max_seq: int, defaults: dict):
    """(chunks, embedded texts) of ``documents`` under ``variant``."""
    import inspect

    from tlcli.data.documents import chunk_documents
    from tlcli_rag import build

    tokens = variant.chunk_tokens or defaults["chunk_tokens"]
    overlap = defaults["overlap"] if variant.overlap is None else variant.overlap
    options = {}
    if variant.merge is not None:
        if "merge_sections" not in inspect.signature(chunk_documents).parameters:
            raise SystemExit(f"{variant.name}: this tlcli's chunker has no merge_sections")
        options["merge_sections"] = variant.merge
    chunk_lists = chunk_documents(documents, tokenizer, max_tokens=min(tokens, max_seq - 2), overlap=overlap,
                                  **options)
    chunks = [c for cs in chunk_lists for c in cs]
    texts = [build._embedding_text(c) if variant.heading == "library" else c.text for c in chunks]
    return chunk_lists, texts


# --- embedding with a cache -------------------------------------------------------------------------

class CachedEncoder:
    def __init__(self, precision: str, cache: Path | None):
        from tlcli.models.embedder import TextEmbedder

        self.embedder = TextEmbedder(MODEL, precision=precision)
        self.precision = self.embedder.precision
        self.cache_path = cache
        self.vectors: dict[str, np.ndarray] = {}
        self.encoded = 0
        self.seconds = 0.0
        if cache is not None and cache.exists():
            with np.load(cache) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.precision}\0{text}".encode()).hexdigest()

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        if todo:
            started = time.perf_counter()
            vectors = self.embedder.encode([t for _, t in todo])
            self.seconds += time.perf_counter() - started
            self.encoded += len(todo)
            self.vectors.update(zip([k for k, _ in todo], vectors))
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        if self.cache_path is None:
            return
        keys = sorted(self.vectors)
        tmp = self.cache_path.with_name(self.cache_path.name + ".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        os.replace(tmp, self.cache_path)


class QueryVectors:
    """Stands in for the Searcher's embedder: the questions' vectors, embedded once."""

    def __init__(self, encoder: CachedEncoder):
        self.encoder = encoder

    def encode(self, texts):
        return self.encoder.encode(list(texts))


# --- one variant over one corpus --------------------------------------------------------------------

def evaluate(folder: Path, chunk_lists, texts, documents, questions, encoder, k: int = 10,
             collapse: bool = False) -> dict:
    from tlcli_rag.search import Searcher
    from tlcli_rag.store import FileRecord, IndexWriter, Manifest, model_digest
    from tlcli.models.text import model_key

    vectors = encoder.encode(texts)
    manifest = Manifest(generation=1, model=MODEL, model_key=model_key(MODEL), model_digest=model_digest(MODEL),
                        dimension=vectors.shape[1], index_type="flat", chunk_tokens=16, overlap=0)
    row = 0
    with IndexWriter(folder) as writer:
        writer.begin(manifest, fresh=True)
        for document, chunks in zip(documents, chunk_lists):
            digest = hashlib.sha256(document.text.encode()).hexdigest()
            writer.add_file(FileRecord(document.source, digest, len(document.text), 0.0), chunks,
                            vectors[row:row + len(chunks)])
            row += len(chunks)
        writer.commit()
    searcher = Searcher(folder)
    searcher._embedder = QueryVectors(encoder)
    out = {}
    for mode in MODES:
        results = searcher.search([q.query for q in questions], k=2 * k if collapse else k, mode=mode)
        if collapse:
            results = [_collapsed(hits)[:k] for hits in results]
        ranks = [next((h.rank for h in hits if relevant(h, q)), None) for hits, q in zip(results, questions)]
        out[mode] = {"recall@3": sum(1 for r in ranks if r and r <= 3), "mrr@10": sum(1 / r for r in ranks if r),
                     "ranks": ranks}
    searcher.reader.close()
    return out


def _collapsed(hits: list) -> list:
    seen, out = set(), []
    for hit in hits:
        if hit.text not in seen:
            seen.add(hit.text)
            out.append(replace(hit, rank=len(out) + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", help="comma-separated variant names (default: all)")
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 | int8 | auto (default fp32)")
    parser.add_argument("--cache", type=Path, help="an .npz file keeping embeddings between runs")
    parser.add_argument("--json", action="store_true", help="also print every figure as one JSON line")
    parser.add_argument("--ranks", action="store_true", help="print each question's rank per variant")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="tlcli-rag-quality-"))
    folders = write_corpora(work)
    documents = {name: load_corpus(folder) for name, folder in folders.items()}
    questions = read_questions(documents)
    encoder = CachedEncoder(args.precision, args.cache)
    tokenizer = encoder.embedder.chunk_tokenizer
    max_seq = encoder.embedder.max_seq_length
    defaults = library_defaults()
    table = variants(defaults)
    chosen = [parse_variant(name, table) for name in args.variants.split(",")] if args.variants else list(table.values())
    per_corpus = {name: [q for q in questions if q.corpus == name] for name in documents}
    print(f"# {len(questions)} questions ({', '.join(f'{n} {len(qs)}' for n, qs in per_corpus.items())}); "
          f"{sum(len(d) for d in documents.values())} documents; model {MODEL} {encoder.precision}; "
          f"library default {defaults['chunk_tokens']} tokens, overlap {defaults['overlap']}", flush=True)
    header = (f"{'variant':<24} {'chunks':>6} {'tok/chunk':>9} {'embedded':>8} " +
              " ".join(f"{m + ' R@3':>11} {'MRR':>5}" for m in MODES))
    print(header)
    results = []
    for variant in chosen:
        counts, lists, row = {"chunks": 0, "tokens": 0}, {}, {}
        per_mode = {m: {"recall@3": 0, "mrr@10": 0.0, "ranks": []} for m in MODES}
        for corpus, docs in documents.items():
            chunk_lists, texts = chunk(variant, docs, tokenizer, max_seq, defaults)
            counts["chunks"] += len(texts)
            counts["tokens"] += sum(len(ids) for ids in encoder.embedder.fast_tokenizer.ids(texts))
            scores = evaluate(work / "index" / re.sub(r"\W+", "-", variant.name) / corpus, chunk_lists, texts,
                              docs, per_corpus[corpus], encoder, collapse=variant.collapse)
            for mode in MODES:
                per_mode[mode]["recall@3"] += scores[mode]["recall@3"]
                per_mode[mode]["mrr@10"] += scores[mode]["mrr@10"]
                per_mode[mode]["ranks"] += scores[mode]["ranks"]
                row[f"{corpus} {mode}"] = scores[mode]["recall@3"]
        n = len(questions)
        line = (f"{variant.name:<24} {counts['chunks']:>6} {counts['tokens'] / counts['chunks']:>9.0f} "
                f"{counts['tokens']:>8} " + " ".join(f"{per_mode[m]['recall@3']:>5}/{n:<3} {per_mode[m]['mrr@10'] / n:>7.3f}"
                                                    for m in MODES))
        print(line, flush=True)
        if args.ranks:
            for mode in MODES:
                print(f"    {mode}: {per_mode[mode]['ranks']}")
        results.append({"variant": variant.name, **counts, "per_corpus_recall@3": row,
                        **{f"{m} recall@3": per_mode[m]["recall@3"] / n for m in MODES},
                        **{f"{m} mrr@10": round(per_mode[m]["mrr@10"] / n, 4) for m in MODES},
                        "ranks": {m: per_mode[m]["ranks"] for m in MODES}})
        encoder.save()
    print("# per corpus, recall@3 (dense/lexical/hybrid): " + "; ".join(
        f"{r['variant']}: " + ", ".join(f"{c} {r['per_corpus_recall@3'][f'{c} dense']}/"
                                        f"{r['per_corpus_recall@3'][f'{c} lexical']}/"
                                        f"{r['per_corpus_recall@3'][f'{c} hybrid']} of {len(per_corpus[c])}"
                                        for c in documents) for r in results))
    print(f"# embedded {encoder.encoded} new texts in {encoder.seconds:.0f} s")
    if args.json:
        print(json.dumps({"questions": len(questions), "precision": encoder.precision, "defaults": defaults,
                          "results": results}))
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
