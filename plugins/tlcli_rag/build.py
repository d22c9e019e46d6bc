"""`tlcli rag index`: find files, hash them, and embed only what changed.

A re-run over an unchanged corpus hashes files and reads one SQLite table: no model, no torch, no FAISS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tlcli.data.bad_files import BadFiles
from tlcli.data.common import BadImage as BadFile
from tlcli.data.documents import (DocumentError, FoundFile, chunk_documents,
                                  file_sha256, find_documents, load_document)
from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
# The options of `tlcli rag index` are what a build takes.
from tlcli_rag.config import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP, IndexConfig
from tlcli_rag.store import (BUILDS, FileRecord, IndexWriter, Manifest, check_index_folder, check_model,
                             check_model_unchanged, choose_index_type, model_digest, read_manifest)

EMBED_GROUP = 1024  # chunks embedded and added per step: bounded memory, regular progress events


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


@dataclass
class UpdatePlan:
    """What an update does, decided from the hashes alone (no model, no FAISS)."""
    current: dict[str, tuple[FoundFile, str]]  # source -> (file, sha256) of every readable file found
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int

    @property
    def nothing_to_do(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def to_index(self) -> list[tuple[FoundFile, str]]:
        """The files to (re)chunk and embed: changed ones first, then new ones."""
        return [self.current[source] for source in self.changed + self.added]




def prepare_build(config: IndexConfig, out: Path | None) -> Path:
    """Check the paths and the index folder before anything is made, and say where this build's run record
    goes: ``out``, or ``<index>/builds/rag-index-<time>`` (never ``runs/`` in whatever folder the command
    ran from)."""
    import time as clock

    folder = Path(config.index)
    try:
        existing = read_manifest(folder) if folder.is_dir() else None
    except UsageError:  # a damaged index: the build says so (or --reembed replaces it)
        existing = None
    chunking(config, existing)
    check_paths(config.paths)
    check_index_folder(folder)
    if out is not None:
        return Path(out)
    base = folder / BUILDS / f"rag-index-{clock.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def chunking(config: IndexConfig, old: Manifest | None) -> tuple[int, int]:
    """``(chunk tokens, overlap)`` of this build: the flags given, else the index's own, else the defaults
    for a new index; the overlap must be under half a chunk."""
    tokens = config.chunk_tokens or (old.chunk_tokens if old is not None else DEFAULT_CHUNK_TOKENS)
    overlap = config.overlap if config.overlap is not None else (old.overlap if old is not None else DEFAULT_OVERLAP)
    if overlap >= tokens // 2:
        raise UsageError(f"--overlap {overlap} must be under half of --chunk-tokens ({tokens})")
    return tokens, overlap


def check_paths(paths: list[str]) -> None:
    """A path that does not exist is a typo to fix, not a bad file to count against --max-bad."""
    import os

    for path in paths:
        if path != "-" and not os.path.lexists(path):
            raise UsageError(f"{path}: no such file or folder; check the path (rag index takes files and folders, "
                             "or - to read paths from stdin)")


def build_index(config: IndexConfig, progress: Progress | None = None, make_embedder=None) -> IndexSummary:
    """Bring the index at ``config.index`` up to date with ``config.paths``. ``make_embedder(model, device,
    precision, batch_size)`` builds the embedder (default: a TextEmbedder in this process; under torchrun,
    one that shares the work with the other ranks)."""
    started = time.perf_counter()
    progress = progress or (lambda event: None)
    folder = Path(config.index)
    check_paths(config.paths)
    bad = BadFiles()
    found, skipped = find_documents(config.paths, max_bytes=int(config.max_file_mb * 1e6))
    bad.extend(skipped)
    seen = len(found) + len(skipped)
    _refuse_index_inside_roots(found, folder)
    with IndexWriter(folder, rebuild=config.reembed) as writer:
        old = writer.manifest
        model = _model_for_update(config, old, folder)
        config = config.model_copy(update=dict(zip(("chunk_tokens", "overlap"), chunking(config, old))))
        fresh = old is None or config.reembed
        # Hash everything first: an unchanged corpus stops here.
        plan = plan_update(found, {} if fresh else writer.indexed_files(), config.paths, bad)
        progress({"stage": "hashed", "files": len(plan.current), "changed": len(plan.changed) + len(plan.added),
                  "removed": len(plan.removed)})
        summary = IndexSummary(unchanged=plan.unchanged, model=model, index_type=old.index_type if old else "")
        if plan.nothing_to_do:
            bad.check(seen, config.max_bad)
        else:
            embedder = _embedder(config, model, make_embedder)
            records, chunk_lists = _load_and_chunk(plan.to_index(), config, embedder, bad, seen)
            new_chunks = sum(len(chunks) for chunks in chunk_lists)
            manifest = _next_manifest(config, old, fresh, model, embedder.dimension, new_chunks)
            progress({"stage": "chunked", "files": len(records), "chunks": new_chunks})
            write_generation(writer, manifest, fresh, plan.removed + plan.changed, list(zip(records, chunk_lists)),
                             embedder, progress)
            # A changed file that cannot be read any more is dropped from the index rather than left stale.
            unreadable = [s for s in plan.changed if s not in {record.path for record in records}]
            summary.added, summary.updated = len(plan.added), len(plan.changed) - len(unreadable)
            summary.removed = len(plan.removed) + len(unreadable)
            summary.embedded, summary.index_type = new_chunks, manifest.index_type
        summary.chunks = _chunk_count(writer)
        summary.skipped = bad.summary()
        summary.seconds = time.perf_counter() - started
        return summary


def _model_for_update(config: IndexConfig, old: Manifest | None, folder: Path) -> str:
    """The model this update embeds with, after refusing settings that differ from the index's own
    (unless ``--reembed`` rebuilds it)."""
    from tlcli.models.text import DEFAULT_TEXT_MODEL

    if old is not None and not config.reembed:
        check_model(old, config.model, folder)
        check_model_unchanged(old, folder)
        if config.index_type not in ("auto", old.index_type):
            raise UsageError(f"--index-type {config.index_type}: {display_path(folder)} is a {old.index_type} "
                             "index; add --reembed to rebuild it as another type")
        tokens, overlap = chunking(config, old)
        if (old.chunk_tokens, old.overlap) != (tokens, overlap):
            raise UsageError(f"--chunk-tokens/--overlap {tokens}/{overlap}: the index was "
                             f"chunked with {old.chunk_tokens}/{old.overlap}; add --reembed to re-chunk it")
    return config.model or (old.model if old is not None else DEFAULT_TEXT_MODEL)


def plan_update(found: list[FoundFile], indexed: dict[str, FileRecord], roots: list[str],
                bad: BadFiles) -> UpdatePlan:
    """Compare the files found now with those ``indexed``, by SHA-256. Unreadable files go to ``bad``."""
    current: dict[str, tuple[FoundFile, str]] = {}
    for file in found:
        try:
            current[file.source] = (file, file_sha256(file.path))
        except OSError as error:
            bad.add(BadFile(file.path, f"unreadable ({(error.strerror or str(error)).lower()})"))
    same = {s for s in current if s in indexed and indexed[s].sha256 == current[s][1]}
    return UpdatePlan(
        current=current,
        added=[s for s in current if s not in indexed],
        changed=[s for s in current if s in indexed and s not in same],
        removed=sorted(path for path in indexed if path not in current and _dropped(path, roots)),
        unchanged=len(same))


def _embedder(config: IndexConfig, model: str, make_embedder):
    if make_embedder is None:
        from tlcli.models.embedder import TextEmbedder

        return TextEmbedder(model, device=config.device, precision=config.precision, batch_size=config.batch_size)
    return make_embedder(model, config.device, config.precision, config.batch_size)


def _load_and_chunk(files: list[tuple[FoundFile, str]], config: IndexConfig, embedder, bad: BadFiles,
                    seen: int) -> tuple[list[FileRecord], list[list]]:
    """Each readable file's record and its chunks (in the same order); unreadable ones go to ``bad``."""
    documents, records = [], []
    for file, digest in files:
        try:
            documents.append(load_document(file.path, file.source, text_field=config.text_field))
            records.append(FileRecord(file.source, digest, file.size, file.mtime))
        except DocumentError as error:
            bad.add(BadFile(file.path, str(error)))
    bad.check(seen, config.max_bad)
    chunk_lists = chunk_documents(documents, embedder.chunk_tokenizer,
                                  max_tokens=min(config.chunk_tokens, embedder.max_seq_length - 2),
                                  overlap=config.overlap)
    return records, chunk_lists


def _next_manifest(config: IndexConfig, old: Manifest | None, fresh: bool, model: str, dimension: int,
                   new_chunks: int) -> Manifest:
    from tlcli.models.text import model_key

    # An update keeps the index's type; a fresh index gets one sized for what it will hold.
    index_type = old.index_type if not fresh else choose_index_type(config.index_type, new_chunks)
    return Manifest(generation=(old.generation + 1 if old else 1), model=model, model_key=model_key(model),
                    model_digest=model_digest(model),
                    dimension=dimension, index_type=index_type, chunk_tokens=config.chunk_tokens,
                    overlap=config.overlap)


def write_generation(writer: IndexWriter, manifest: Manifest, fresh: bool, drop: list[str],
                     pending: list[tuple[FileRecord, list]], embedder, progress: Progress) -> None:
    """Write generation ``manifest`` beside the current one: without the files in ``drop``, with ``pending``
    (each file's record and chunks) embedded. Nothing is published until ``writer.commit()`` at the end, so a
    kill at any point leaves the current generation answering."""
    training = None
    tracker = IndexProgress(progress, files=len(pending), chunks=sum(len(chunks) for _, chunks in pending))
    if manifest.index_type == "ivf-pq" and fresh:
        # IVF-PQ learns its quantizers from data: embed everything first (the corpus fits in memory
        # as float32 for training), then add.
        training = _encode(embedder, [_embedding_text(c) for _, chunks in pending for c in chunks],
                           lambda n: tracker.update(0, n))
    writer.begin(manifest, fresh=fresh, training=training)
    writer.remove_files(drop)
    for group, vectors in _embedded_groups(pending, embedder, training, tracker):
        row = 0
        for record, chunks in group:
            writer.add_file(record, chunks, vectors[row:row + len(chunks)])
            row += len(chunks)
    writer.commit()


def _embedded_groups(pending: list[tuple[FileRecord, list]], embedder, training: np.ndarray | None,
                     tracker: "IndexProgress"):
    """Yield ``(files, vectors)`` about EMBED_GROUP chunks at a time (``training``: vectors already made);
    ``tracker`` hears of every embedded batch."""
    done = 0
    for files_done, group in _file_groups(pending, EMBED_GROUP):
        texts = [_embedding_text(c) for _, chunks in group for c in chunks]
        before, files_before = done, files_done - len(group)
        if training is not None:
            vectors = training[done:done + len(texts)]
        else:
            vectors = _encode(embedder, texts, lambda n: tracker.update(files_before, before + n))
        yield group, vectors
        done += len(texts)
        tracker.update(files_done, done)


def _encode(embedder, texts: list[str], progress) -> np.ndarray:
    """``embedder.encode`` with a per-batch progress callback where the embedder takes one."""
    try:
        return embedder.encode(texts, progress=progress)
    except TypeError as error:
        if "progress" not in str(error):
            raise
        return embedder.encode(texts)


class IndexProgress:
    """An index build's embedding progress as ``index`` events: ``{"stage": "embedding", "files_done",
    "files", "chunks_done", "chunks", "chunks_per_s", "eta_s"}``, at most one every ``every`` seconds
    (plus the last one), however often the embedder reports."""

    def __init__(self, emit: Progress, files: int, chunks: int, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.emit, self.files, self.chunks, self.every, self.clock = emit, files, chunks, every, clock
        self.started = clock()
        self.last = float("-inf")

    def update(self, files_done: int, chunks_done: int) -> None:
        now = self.clock()
        if chunks_done < self.chunks and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = chunks_done / elapsed
        eta = (self.chunks - chunks_done) / rate if rate > 0 else None
        self.emit({"stage": "embedding", "files_done": files_done, "files": self.files,
                   "chunks_done": chunks_done, "chunks": self.chunks, "chunks_per_s": round(rate, 2),
                   "eta_s": None if eta is None else round(eta, 1)})


def progress_line(event: dict) -> str:
    """One plain line for an ``index`` event (a log's view of the build)."""
    stage = event.get("stage")
    if stage == "hashed":
        return f"hashed {event['files']} files: {event['changed']} new or changed, {event['removed']} removed"
    if stage == "chunked":
        return f"chunked {event['files']} files into {event['chunks']} chunks"
    eta = event.get("eta_s")
    return (f"embedded {event.get('chunks_done')}/{event.get('chunks')} chunks, {event.get('files_done')}/"
            f"{event.get('files')} files ({event.get('chunks_per_s', 0):.1f} chunks/s, ETA {_clock(eta)})")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class ProgressPrinter:
    """What a person sees of ``index`` events: on a terminal one bar redrawn in place; in a log a plain
    line (``progress_line``) whenever ``every`` seconds have passed since the last one, and for every
    stage change and the last batch. Embedding events come at least once a second while the model
    works, so lines in a log are at most ``every`` + one batch (about 1-2 s on a CPU) apart."""

    def __init__(self, stream=None, every: float = 3.0, clock: Callable[[], float] = time.monotonic,
                 terminal: bool | None = None):
        import sys

        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.every, self.clock = every, clock
        self.last = float("-inf")
        self.bar_open = False

    def __call__(self, event: dict) -> None:
        embedding = event.get("stage") == "embedding"
        last = embedding and event.get("chunks_done") == event.get("chunks")
        if self.terminal and embedding:
            self._bar(event, last)
            return
        now = self.clock()
        if embedding and not last and now - self.last < self.every:
            return
        self.last = now
        self._write(progress_line(event) + "\n")

    def _bar(self, event: dict, last: bool) -> None:
        done, total = event.get("chunks_done") or 0, max(event.get("chunks") or 1, 1)
        filled = int(30 * done / total)
        self._write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} chunks "
                    f"{event.get('chunks_per_s', 0):.1f}/s ETA {_clock(event.get('eta_s'))}  " + ("\n" if last else ""))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _file_groups(pending: list[tuple[FileRecord, list]], size: int):
    """Yield ``(files so far, group)``: whole files, each group closed once it holds ``size`` chunks."""
    group: list[tuple[FileRecord, list]] = []
    chunks = 0
    for n, item in enumerate(pending):
        group.append(item)
        chunks += len(item[1])
        if chunks >= size or n + 1 == len(pending):
            yield n + 1, group
            group, chunks = [], 0


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


def _refuse_index_inside_roots(found: list[FoundFile], folder: Path) -> None:
    # Hidden folders are never walked, so the default .tlcli-index/ is safe; a visible one is not.
    import os

    real = os.path.realpath(folder)
    for file in found:
        if os.path.commonpath([os.path.realpath(file.path), real]) == real:
            raise UsageError(f"--index {display_path(folder)} lies inside a folder being indexed; put it elsewhere "
                             "or give it a name starting with '.'")
