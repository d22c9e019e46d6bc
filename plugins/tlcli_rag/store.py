"""The on-disk index: a FAISS file for vectors, a SQLite file for everything else, switched atomically.

Folder layout (default ``.tlcli-index/``)::

    manifest.json        which generation is current, and the model, dimension, metric, index type
    gen-000007.faiss     IndexIDMap2(Flat | HNSW | IVF-PQ), ids = chunk ids (faiss.write_index format)
    gen-000007.sqlite    files, chunks (text + metadata), chunks_fts (FTS5), meta; WAL journal
    lock                 held (flock) by the one process updating the index

An update never touches the current generation: it copies the SQLite file (the backup API), applies the
changes to the copy and to the FAISS index in memory, writes both under temporary names, renames them to
the next generation's names, then replaces ``manifest.json`` (one ``os.replace``). A crash or ``kill -9`` at
any point leaves the manifest naming the old, complete generation; the next update removes the leftovers.
Generations are never modified once published, so readers open them with SQLite's ``immutable=1``.

No pickle: FAISS's own binary format, SQLite and JSON only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Iterable

import numpy as np

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.runs.paths import atomic_write_text, fsync_dir

DEFAULT_INDEX_DIR = Path(".tlcli-index")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
INDEX_TYPES = ("flat", "hnsw", "ivf-pq")
FLAT_UP_TO = 50_000  # chunks; exact search stays under a few ms per query up to about here
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
IVF_NPROBE = 16
IVF_MIN_CHUNKS = 2_000

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL,
    chunks INTEGER NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL REFERENCES files(path), chunk_no INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, line_start INTEGER NOT NULL, line_end INTEGER NOT NULL,
    heading TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX chunks_by_path ON chunks(path);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, heading, content='chunks', content_rowid='id', tokenize="porter unicode61 tokenchars '_'"
);
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) VALUES ('delete', old.id, old.text, old.heading);
END;
"""


@dataclass(frozen=True)
class Manifest:
    generation: int
    model: str  # as the user named it
    model_key: str  # identity of its weights (tlcli.models.text.model_key)
    dimension: int
    index_type: str
    chunk_tokens: int
    overlap: int
    normalized: bool = True
    metric: str = "inner_product"
    format: int = FORMAT_VERSION
    model_digest: str = ""  # sha256 over a local model folder's files ("" for a hub name, or an older index)
    # The published files' sizes (0: an older index): a truncated file is found by a stat, before any read.
    faiss_bytes: int = 0
    sqlite_bytes: int = 0

    @property
    def faiss_name(self) -> str:
        return f"gen-{self.generation:06d}.faiss"

    @property
    def sqlite_name(self) -> str:
        return f"gen-{self.generation:06d}.sqlite"

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


MAX_GENERATION = 999_999_999

# What each manifest field must be: (type, check, what is expected); generation names files, so it is checked
# to be a plain number before any file name is made of it ("../../x" or -5 would name files elsewhere).
_FIELDS = {
    "generation": (int, lambda v: 1 <= v <= MAX_GENERATION, f"a whole number from 1 to {MAX_GENERATION}"),
    "model": (str, bool, "a model name"),
    "model_key": (str, bool, "a model key"),
    "dimension": (int, lambda v: 1 <= v <= 65_536, "a whole number from 1 to 65536"),
    "index_type": (str, lambda v: v in INDEX_TYPES, " or ".join(INDEX_TYPES)),
    "chunk_tokens": (int, lambda v: 16 <= v <= 8192, "a whole number from 16 to 8192"),
    "overlap": (int, lambda v: 0 <= v <= 8192, "a whole number from 0 to 8192"),
    "normalized": (bool, lambda v: True, "true or false"),
    "metric": (str, lambda v: v == "inner_product", '"inner_product"'),
    "format": (int, lambda v: True, "a whole number"),
    "model_digest": (str, lambda v: True, "a content digest"),
    "faiss_bytes": (int, lambda v: v >= 0, "a size in bytes"),
    "sqlite_bytes": (int, lambda v: v >= 0, "a size in bytes"),
}


def rebuild_hint(folder: Path) -> str:
    return f"rebuild it with `tlcli rag index PATHS --index {display_path(folder)} --reembed`"


def read_manifest(folder: Path, *, rebuilding: bool = False) -> Manifest | None:
    """The folder's manifest, every field checked; None when there is none (or, when ``rebuilding``, when
    it is unreadable: a rebuild replaces it)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            raise UsageError(f"{display_path(path)}: not a tlcli index manifest ({type(error).__name__}); "
                             f"{rebuild_hint(folder)}, or point --index at another folder") from None
        if not isinstance(data, dict):
            raise UsageError(f"{display_path(path)}: not a tlcli index manifest (a JSON object is expected); "
                             f"{rebuild_hint(folder)}")
        if data.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise UsageError(f"{display_path(folder)}: index format {str(data.get('format'))[:20]}, this tlcli "
                             f"reads {FORMAT_VERSION}; {rebuild_hint(folder)}")
        unknown = sorted(set(data) - set(_FIELDS))
        missing = sorted({f.name for f in fields(Manifest) if f.default is MISSING} - set(data))
        if unknown or missing:
            raise UsageError(f"{display_path(path)}: not a tlcli index manifest ("
                             + (f"unknown field {unknown[0][:40]!r}" if unknown else f"no {missing[0]!r}")
                             + f"); {rebuild_hint(folder)}")
        for name, value in data.items():
            kind, ok, expected = _FIELDS[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or not ok(value):
                raise UsageError(f"{display_path(path)}: {name} = {json.dumps(value)[:60]} is not {expected}; "
                                 f"{rebuild_hint(folder)}")
    except UsageError:
        if rebuilding:
            return None
        raise
    return Manifest(**data)


def check_generation(folder: Path, manifest: Manifest) -> None:
    """Both files of the manifest's generation are there, and the SQLite file has the index's tables:
    a cheap check before any read (``verify_generation`` reads everything)."""
    folder = Path(folder)
    for name, size in ((manifest.sqlite_name, manifest.sqlite_bytes), (manifest.faiss_name, manifest.faiss_bytes)):
        if not (folder / name).is_file():
            raise UsageError(f"{display_path(folder / name)}: missing (the manifest names generation "
                             f"{manifest.generation}); {rebuild_hint(folder)}")
        actual = (folder / name).stat().st_size
        if size and actual != size:
            raise UsageError(f"{display_path(folder / name)}: damaged ({actual:,} bytes, written as {size:,}: "
                             f"truncated or replaced); {rebuild_hint(folder)}")
    with sqlite_errors(folder, manifest):
        connection = connect_readonly(folder / manifest.sqlite_name)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    lacking = [t for t in ("meta", "files", "chunks", "chunks_fts") if t not in tables]
    if lacking:
        raise UsageError(f"{display_path(folder / manifest.sqlite_name)}: no {lacking[0]} table; "
                         f"{rebuild_hint(folder)}")


@contextmanager
def sqlite_errors(folder: Path, manifest: Manifest):
    """A damaged SQLite file (truncated, garbage, a table dropped) as one line naming it and the fix."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        raise UsageError(f"{display_path(Path(folder) / manifest.sqlite_name)}: damaged ({error}); "
                         f"{rebuild_hint(folder)}") from None


def read_faiss(folder: Path, manifest: Manifest, chunks: int | None = None):
    """The generation's FAISS index, checked against the manifest (and the chunk count when given)."""
    import faiss

    path = Path(folder) / manifest.faiss_name
    try:
        index = faiss.read_index(str(path))
    except (RuntimeError, MemoryError):  # FAISS's own text is a C++ source location
        raise UsageError(f"{display_path(path)}: damaged (truncated, or not a FAISS index); "
                         f"{rebuild_hint(folder)}") from None
    problem = None
    if index.d != manifest.dimension:
        problem = f"{index.d}-d vectors, the manifest says {manifest.dimension}"
    elif chunks is not None and index.ntotal != chunks:
        problem = f"{index.ntotal} vectors for {chunks} chunks in {manifest.sqlite_name}"
    elif not hasattr(index, "id_map"):
        problem = "not an id-mapped index"
    if problem:
        raise UsageError(f"{display_path(path)}: does not match the index ({problem}); {rebuild_hint(folder)}")
    return index


def verify_generation(folder: Path, manifest: Manifest) -> None:
    """Everything ``rag info`` reports is read and checked: both files, SQLite's own integrity check, the
    FTS index, and FAISS's vectors against the chunks."""
    check_generation(folder, manifest)
    with sqlite_errors(folder, manifest):
        connection = connect_readonly(Path(folder) / manifest.sqlite_name)
        try:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(str(problems[0])[:160])
            chunks = connection.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            connection.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'x'").fetchone()
        finally:
            connection.close()
    read_faiss(folder, manifest, chunks)


def require_manifest(folder: Path) -> Manifest:
    manifest = read_manifest(folder)
    if manifest is None:
        raise UsageError(f"{display_path(folder)}: no index here; build one with `tlcli rag index PATHS "
                         f"--index {display_path(folder)}`")
    return manifest


# The files that make a local model what it is: weights, configs, tokenizer. READMEs and hidden files are not.
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model", ".onnx", ".msgpack")


def model_digest(model: str) -> str:
    """sha256 over a local model folder's files (relative name and content), so a byte-identical copy
    elsewhere is the same model and weights replaced in place are another; "" for a hub name. Each file's
    hash is remembered per (path, size, mtime, inode, ctime), so an unchanged model costs a stat per file."""
    from tlcli.models.clip import _file_digest
    from tlcli.models.text import resolve_text_model

    root = Path(resolve_text_model(model)).expanduser()
    if not root.is_dir():
        return ""
    parts = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file() \
                or path.suffix.lower() not in MODEL_FILE_SUFFIXES or path.name.upper().startswith(("README", "LICENSE")):
            continue
        parts.append([relative.as_posix(), _file_digest(path)])
    return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogateescape")).hexdigest()


def check_model(manifest: Manifest, model: str | None, folder: Path) -> None:
    """Refuse a model other than the one the index was built with, in one line naming both. A model with
    the same content as the index's own (a copy of its folder elsewhere) is the same model."""
    from tlcli.models.text import model_key

    if model is None or model_key(model) == manifest.model_key:
        return
    if manifest.model_digest and model_digest(model) == manifest.model_digest:
        return
    raise UsageError(f"{display_path(folder)} was built with model {manifest.model!r} "
                     f"({manifest.dimension}-d); --model {model!r} is another model: drop --model to use the "
                     f"index's own, or rebuild with `tlcli rag index ... --model {model} --reembed`")


def check_model_unchanged(manifest: Manifest, folder: Path) -> None:
    """Refuse to embed with the index's model when its files changed since the build: new query vectors
    against old ones (or an update mixing both) would be silently wrong."""
    from tlcli.models.text import model_key, resolve_text_model

    local = Path(resolve_text_model(manifest.model)).expanduser()
    if manifest.model_digest:
        if not local.is_dir():
            raise UsageError(f"{display_path(folder)} was built with the model folder {manifest.model!r}, which is "
                             f"not there now; restore it (or run from the folder it was built in), or "
                             f"{rebuild_hint(folder)} --model MODEL")
        changed = model_digest(manifest.model) != manifest.model_digest
    else:  # an index from before content digests: the path, sizes and times it recorded
        changed = local.is_dir() and model_key(manifest.model) != manifest.model_key
    if changed:
        raise UsageError(f"the model {manifest.model!r} changed since {display_path(folder)} was built (its files' "
                         f"content differs): its vectors no longer match; restore the model, or "
                         f"{rebuild_hint(folder)}")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A published generation never changes: open it immutable (no locks, no -shm/-wal files)."""
    uri = "file:" + str(Path(path).resolve()).replace("?", "%3f").replace("#", "%23") + "?mode=ro&immutable=1"
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    return connection


# --- FAISS index construction --------------------------------------------------------------------

def choose_index_type(requested: str, chunks: int) -> str:
    if requested == "auto":
        return "flat" if chunks <= FLAT_UP_TO else "hnsw"
    if requested not in INDEX_TYPES:
        raise UsageError(f"--index-type {requested}: expected auto, {', '.join(INDEX_TYPES)}")
    return requested


def new_faiss_index(index_type: str, dimension: int, training: np.ndarray | None = None):
    """An empty IndexIDMap2 of ``index_type`` (IVF-PQ is trained on ``training``)."""
    import faiss

    if index_type == "flat":
        inner = faiss.IndexFlatIP(dimension)
    elif index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    elif index_type == "ivf-pq":
        count = 0 if training is None else len(training)
        if count < IVF_MIN_CHUNKS:
            raise UsageError(f"--index-type ivf-pq needs at least {IVF_MIN_CHUNKS} chunks to train its "
                             f"quantizers (this corpus has {count}); use --index-type flat")
        nlist = int(max(8, min(4 * np.sqrt(count), count // 39)))
        subquantizers = next(m for m in (48, 32, 24, 16, 12, 8, 4, 2, 1) if dimension % m == 0)
        quantizer = faiss.IndexFlatIP(dimension)
        inner = faiss.IndexIVFPQ(quantizer, dimension, nlist, subquantizers, 8, faiss.METRIC_INNER_PRODUCT)
        inner.own_fields = True
        quantizer.this.disown()  # the IVF index owns (and frees) its quantizer
        inner.train(np.ascontiguousarray(training, dtype=np.float32))
        inner.nprobe = min(IVF_NPROBE, nlist)
    else:  # pragma: no cover - validated earlier
        raise ValueError(index_type)
    return faiss.IndexIDMap2(inner)


def faiss_ids(index) -> np.ndarray:
    import faiss

    return faiss.vector_to_array(index.id_map).astype(np.int64)


def remove_from_index(index, ids: np.ndarray, index_type: str):
    """``index`` without ``ids``. HNSW graphs cannot drop nodes, so an HNSW index is rebuilt from its own
    (exact) stored vectors; Flat and IVF-PQ remove in place."""
    if len(ids) == 0:
        return index
    if index_type != "hnsw":
        index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
        return index
    all_ids = faiss_ids(index)
    keep = ~np.isin(all_ids, ids)
    vectors = index.index.reconstruct_n(0, index.ntotal)[keep]
    rebuilt = new_faiss_index("hnsw", index.d)
    if len(vectors):
        rebuilt.add_with_ids(vectors, all_ids[keep])
    return rebuilt


# --- the writer ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int
    mtime: float


BUILDS = "builds"  # the run records of builds made without --out (tlcli_rag.build.prepare_build)


def check_index_folder(folder: Path) -> None:
    """``folder`` may hold an index: new, empty, or a tlcli index already (never someone else's folder)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--index {display_path(folder)}: not a folder")
    if folder.is_dir() and not (folder / MANIFEST).exists() and not (folder / "lock").exists() \
            and any(entry.name != BUILDS for entry in folder.iterdir()):
        raise UsageError(f"--index {display_path(folder)}: a folder that is not a tlcli index and is not "
                         "empty; give a new or empty folder")


class IndexWriter:
    """One update of an index folder, holding its lock. Use as a context manager; ``commit`` publishes."""

    def __init__(self, folder: Path, *, rebuild: bool = False):
        """``rebuild``: the update replaces the whole index (``--reembed``), so a damaged current generation
        (or manifest) is no obstacle; otherwise it is refused before anything is read from it."""
        self.folder = Path(folder)
        check_index_folder(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / "lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise UsageError(f"--index {display_path(folder)}: another `tlcli rag index` is updating it; "
                             "wait for it to finish") from None
        try:
            self.manifest = read_manifest(self.folder, rebuilding=rebuild)
            if self.manifest is not None and not rebuild:
                check_generation(self.folder, self.manifest)
        except BaseException:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            raise
        self._remove_leftovers()
        self.db: sqlite3.Connection | None = None
        self.index = None
        self.new_manifest: Manifest | None = None

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        for path in self.folder.glob("*.tmp-*"):
            if path.name.endswith(f"-{os.getpid()}"):
                path.unlink(missing_ok=True)
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def _remove_leftovers(self) -> None:
        """Files of generations that never got published (a crash mid-update) or were replaced."""
        keep = {MANIFEST, "lock"}
        if self.manifest is not None:
            keep |= {self.manifest.faiss_name, self.manifest.sqlite_name}
        for path in self.folder.iterdir():
            if path.name not in keep and (path.name.startswith("gen-") or ".tmp-" in path.name):
                path.unlink(missing_ok=True)

    def indexed_files(self) -> dict[str, FileRecord]:
        """What the current generation holds, without opening FAISS."""
        if self.manifest is None:
            return {}
        with sqlite_errors(self.folder, self.manifest):
            connection = connect_readonly(self.folder / self.manifest.sqlite_name)
            try:
                rows = connection.execute("SELECT path, sha256, size, mtime FROM files").fetchall()
            finally:
                connection.close()
        return {row["path"]: FileRecord(row["path"], row["sha256"], row["size"], row["mtime"]) for row in rows}

    def begin(self, manifest: Manifest, *, fresh: bool, training: np.ndarray | None = None) -> None:
        """Start generation ``manifest.generation`` from the current one (or empty when ``fresh``)."""
        self.new_manifest = manifest
        self._tmp_sqlite = self.folder / f"{manifest.sqlite_name}.tmp-{os.getpid()}"
        self._tmp_faiss = self.folder / f"{manifest.faiss_name}.tmp-{os.getpid()}"
        self.db = sqlite3.connect(self._tmp_sqlite)
        if fresh or self.manifest is None:
            self.db.executescript(SCHEMA)
            self.index = new_faiss_index(manifest.index_type, manifest.dimension, training)
        else:
            with sqlite_errors(self.folder, self.manifest):
                source = connect_readonly(self.folder / self.manifest.sqlite_name)
                try:
                    source.backup(self.db)
                finally:
                    source.close()
                chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            self.index = read_faiss(self.folder, self.manifest, chunks)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in manifest.__dict__.items()])

    def remove_files(self, paths: Iterable[str]) -> int:
        """Drop these files and their chunks; returns the number of chunks removed."""
        paths = list(paths)
        ids: list[int] = []
        for path in paths:
            ids += [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]
            self.db.execute("DELETE FROM chunks WHERE path = ?", (path,))
            self.db.execute("DELETE FROM files WHERE path = ?", (path,))
        self.index = remove_from_index(self.index, np.asarray(ids, dtype=np.int64), self.new_manifest.index_type)
        return len(ids)

    def add_file(self, record: FileRecord, chunks: list, vectors: np.ndarray) -> None:
        """Insert one file with its chunks (``tlcli.data.documents.Chunk``) and their vectors."""
        assert len(chunks) == len(vectors)
        self.db.execute("INSERT INTO files(path, sha256, size, mtime, chunks) VALUES (?, ?, ?, ?, ?)",
                        (record.path, record.sha256, record.size, record.mtime, len(chunks)))
        first = (self.db.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0] or 0) + 1
        ids = np.arange(first, first + len(chunks), dtype=np.int64)
        self.db.executemany(
            'INSERT INTO chunks(id, path, chunk_no, start, "end", line_start, line_end, heading, text) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(int(i), record.path, n, c.start, c.end, c.line_start, c.line_end, c.heading_text, c.text)
             for n, (i, c) in enumerate(zip(ids, chunks))])
        if len(chunks):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def commit(self) -> Manifest:
        """Write both files, rename them into place, then switch the manifest. Returns the new manifest."""
        import faiss

        self.db.commit()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("PRAGMA optimize")
        self.db.close()
        self.db = None
        faiss.write_index(self.index, str(self._tmp_faiss))
        for path in (self._tmp_faiss, self._tmp_sqlite):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        manifest = replace(self.new_manifest, faiss_bytes=self._tmp_faiss.stat().st_size,
                           sqlite_bytes=self._tmp_sqlite.stat().st_size)
        os.replace(self._tmp_faiss, self.folder / manifest.faiss_name)
        os.replace(self._tmp_sqlite, self.folder / manifest.sqlite_name)
        atomic_write_text(self.folder / MANIFEST, manifest.to_json())
        fsync_dir(self.folder)
        old = self.manifest
        self.manifest = manifest
        if old is not None and old.generation != manifest.generation:
            for name in (old.faiss_name, old.sqlite_name):
                (self.folder / name).unlink(missing_ok=True)
        return manifest


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


def now() -> float:
    return time.time()
