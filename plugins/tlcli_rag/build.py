"""`tlcli rag index`: find files, hash them, and embed only what changed.

A re-run over an unchanged corpus hashes files and reads one SQLite table: no model, no torch, no FAISS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tlcli.data.bad_files import BadFiles
from tlcli.data.common import BadImage as BadFile
from tlcli.data.documents import (DEFAULT_MAX_FILE_BYTES, DocumentError, FoundFile, HFTokenizer,
                                  chunk_documents, file_sha256, find_documents, load_document)
from tlcli.errors import UsageError
from tlcli.output import display_path
from tlcli_rag.store import FileRecord, IndexWriter, Manifest, check_model, choose_index_type

EMBED_GROUP = 1024  # chunks embedded and added per step: bounded memory, regular progress events


class IndexConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(min_length=1)
    index: str
    model: str | None = None  # None: the index's own model (or the default for a new index)
    index_type: str = "auto"
    chunk_tokens: int = Field(200, ge=16, le=8192)
    overlap: int = Field(30, ge=0)
    text_field: str = "text"
    reembed: bool = False
    max_bad: float = Field(0.05, ge=0.0, le=1.0)
    max_file_mb: float = Field(DEFAULT_MAX_FILE_BYTES / 1e6, gt=0)
    batch_size: int = Field(64, ge=1)
    device: str = "cpu"
    precision: str = "auto"


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0  # chunks in the index after the update
    embedded: int = 0  # chunks embedded by this update
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)
    index_type: str = ""
    model: str = ""

    def record(self) -> dict:
        return {"added": self.added, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "chunks": self.chunks, "embedded": self.embedded,
                "seconds": round(self.seconds, 3), "index_type": self.index_type, "model": self.model,
                "skipped": self.skipped}


Progress = Callable[[dict], None]


def build_index(config: IndexConfig, progress: Progress | None = None) -> IndexSummary:
    """Bring the index at ``config.index`` up to date with ``config.paths``."""
    from tlcli.models.text import DEFAULT_TEXT_MODEL, model_key

    started = time.perf_counter()
    progress = progress or (lambda event: None)
    folder = Path(config.index)
    if config.overlap >= config.chunk_tokens // 2:
        raise UsageError(f"--overlap {config.overlap}: must be under half of --chunk-tokens ({config.chunk_tokens})")
    bad = BadFiles()
    found, skipped = find_documents(config.paths, max_bytes=int(config.max_file_mb * 1e6))
    bad.extend(skipped)
    _refuse_index_inside_roots(found, folder)
    summary = IndexSummary()
    with IndexWriter(folder) as writer:
        old = writer.manifest
        requested_key = model_key(config.model) if config.model is not None else None
        if old is not None and not config.reembed:
            check_model(old, config.model, requested_key, folder)
            if config.index_type not in ("auto", old.index_type):
                raise UsageError(f"--index-type {config.index_type}: {display_path(folder)} is a {old.index_type} "
                                 "index; add --reembed to rebuild it as another type")
        model = config.model or (old.model if old is not None else DEFAULT_TEXT_MODEL)
        summary.model = model
        fresh = old is None or config.reembed
        indexed = {} if fresh else writer.indexed_files()
        if not fresh and (old.chunk_tokens, old.overlap) != (config.chunk_tokens, config.overlap):
            raise UsageError(f"--chunk-tokens/--overlap {config.chunk_tokens}/{config.overlap}: the index was "
                             f"chunked with {old.chunk_tokens}/{old.overlap}; add --reembed to re-chunk it")

        # Hash everything first: an unchanged corpus stops here.
        current: dict[str, tuple[FoundFile, str]] = {}
        for file in found:
            try:
                current[file.source] = (file, file_sha256(file.path))
            except OSError as error:
                bad.add(BadFile(file.path, f"unreadable ({(error.strerror or str(error)).lower()})"))
        removed = sorted(path for path in indexed if path not in current and _dropped(path, config.paths))
        changed = [s for s in current if s in indexed and indexed[s].sha256 != current[s][1]]
        added = [s for s in current if s not in indexed]
        summary.unchanged = sum(1 for s in current if s in indexed and indexed[s].sha256 == current[s][1])
        progress({"stage": "hashed", "files": len(current), "changed": len(changed) + len(added),
                  "removed": len(removed)})
        if not (removed or changed or added):
            bad.check(len(found) + len(skipped), config.max_bad)
            summary.chunks = _chunk_count(writer)
            summary.index_type = old.index_type if old else ""
            summary.skipped = bad.summary()
            summary.seconds = time.perf_counter() - started
            return summary

        from tlcli.embedder import TextEmbedder

        embedder = TextEmbedder(model, device=config.device, precision=config.precision,
                                batch_size=config.batch_size)
        to_embed = [current[s] for s in changed + added]
        documents, records = [], []
        for file, digest in to_embed:
            try:
                documents.append(load_document(file.path, file.source, text_field=config.text_field))
                records.append(FileRecord(file.source, digest, file.size, file.mtime))
            except DocumentError as error:
                bad.add(BadFile(file.path, str(error)))
        bad.check(len(found) + len(skipped), config.max_bad)
        # A changed file that cannot be read any more is dropped from the index rather than left stale.
        unreadable_changed = [s for s in changed if s not in {r.path for r in records}]
        chunk_lists = chunk_documents(documents, HFTokenizer(embedder.tokenizer),
                                      max_tokens=min(config.chunk_tokens, embedder.max_seq_length - 2),
                                      overlap=config.overlap)
        total_new = sum(len(c) for c in chunk_lists)
        kept = 0 if fresh else _chunk_count(writer) - sum(_file_chunks(writer, s) for s in removed + changed)
        index_type = (old.index_type if (old and not fresh) else choose_index_type(config.index_type, kept + total_new))
        manifest = Manifest(generation=(old.generation + 1 if old else 1), model=model, model_key=model_key(model),
                            dimension=embedder.dimension, index_type=index_type, chunk_tokens=config.chunk_tokens,
                            overlap=config.overlap)
        progress({"stage": "chunked", "files": len(records), "chunks": total_new})

        embed_started = time.perf_counter()
        pending = [(r, c) for r, c in zip(records, chunk_lists)]
        training = None
        if index_type == "ivf-pq" and fresh:
            # IVF-PQ learns its quantizers from data: embed everything first (the corpus fits in memory
            # as float32 for training), then add.
            all_chunks = [c for _, cs in pending for c in cs]
            training = embedder.encode([_embedding_text(c) for c in all_chunks])
        writer.begin(manifest, fresh=fresh, training=training)
        writer.remove_files(removed + changed)
        offset = 0
        group: list[tuple[FileRecord, list]] = []
        group_size = 0
        done = 0
        for n, (record, chunks) in enumerate(pending):
            group.append((record, chunks))
            group_size += len(chunks)
            if group_size < EMBED_GROUP and n + 1 < len(pending):
                continue
            texts = [_embedding_text(c) for _, cs in group for c in cs]
            if training is not None:
                vectors = training[offset:offset + len(texts)]
            else:
                vectors = embedder.encode(texts)
            offset += len(texts)
            row = 0
            for rec, cs in group:
                writer.add_file(rec, cs, vectors[row:row + len(cs)])
                row += len(cs)
            done += len(texts)
            elapsed = time.perf_counter() - embed_started
            progress({"stage": "embedding", "files": n + 1, "files_total": len(pending), "chunks": done,
                      "chunks_total": total_new, "chunks_per_s": round(done / max(elapsed, 1e-9), 2)})
            group, group_size = [], 0
        writer.commit()
        summary.added = len(added)
        summary.updated = len(changed) - len(unreadable_changed)
        summary.removed = len(removed) + len(unreadable_changed)
        summary.embedded = total_new
        summary.chunks = _chunk_count(writer)
        summary.index_type = index_type
        summary.skipped = bad.summary()
        summary.seconds = time.perf_counter() - started
        return summary


def _embedding_text(chunk) -> str:
    """What the model embeds: the heading path gives a passage the context its own words may lack."""
    return f"{chunk.heading_text}\n{chunk.text}" if chunk.heading else chunk.text


def _dropped(path: str, roots: list[str]) -> bool:
    """An indexed file missing from this run is dropped when it was under a root given now, or when it
    no longer exists at all; files indexed from other roots are kept."""
    import os

    from tlcli.data.documents import source_key

    if not os.path.exists(path):
        return True
    for root in roots:
        key = source_key(Path(root))
        if path == key or path.startswith(key.rstrip(os.sep) + os.sep) or key == ".":
            return True
    return False


def _chunk_count(writer: IndexWriter) -> int:
    if writer.manifest is None:
        return 0
    from tlcli_rag.store import connect_readonly

    connection = connect_readonly(writer.folder / writer.manifest.sqlite_name)
    try:
        return connection.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    finally:
        connection.close()


def _file_chunks(writer: IndexWriter, path: str) -> int:
    from tlcli_rag.store import connect_readonly

    connection = connect_readonly(writer.folder / writer.manifest.sqlite_name)
    try:
        row = connection.execute("SELECT chunks FROM files WHERE path = ?", (path,)).fetchone()
        return int(row[0]) if row else 0
    finally:
        connection.close()


def _refuse_index_inside_roots(found: list[FoundFile], folder: Path) -> None:
    # Hidden folders are never walked, so the default .tlcli-index/ is safe; a visible one is not.
    import os

    real = os.path.realpath(folder)
    for file in found:
        if os.path.commonpath([os.path.realpath(file.path), real]) == real:
            raise UsageError(f"--index {display_path(folder)} lies inside a folder being indexed; put it elsewhere "
                             "or give it a name starting with '.'")
