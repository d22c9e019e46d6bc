"""The one text encoder: ``TextEmbedder.encode(texts)`` -> float32 rows, L2-normalised, in input order;
``Embedder`` adds the content-keyed disk cache the text commands use.

A sentence-transformers folder of the common layout -- a BERT-family transformer (``model_type`` bert),
mean or CLS pooling, optional normalisation, ``model.safetensors`` and ``tokenizer.json`` -- is loaded
here, without sentence-transformers or transformers: the weights with safetensors, the tokenizer with the
``tokenizers`` library, and the forward pass is tlcli's own (``BertEncoder``): fused query/key/value
projections, ``scaled_dot_product_attention``, oneDNN-packed linears with the feed-forward GELU inside
its kernel on a CPU (tlcli.models.packed). A search process therefore starts about as fast as torch
imports. Its results equal the library's (cosine >= 0.9999 in fp32; tests/rag/test_embedder.py).

- every text is tokenised once, up front, then batched longest first so each batch pads to lengths close
  to its own; a batch holds at most ``token_budget`` tokens, so short texts go in big batches;
- the precision comes from tlcli.device (``encode_texts``: bf16 where this CPU measured faster and as
  exact; ``int8``: int8 linears with per-token activations, tlcli.models.int8, when asked); pooling and
  normalisation run in float32.

Any other model (another architecture, a Dense layer, a hub name not on disk) goes through
``SentenceTransformer.encode``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tlcli.console.errors import UsageError
from tlcli.features.texts import index_shards, read_rows, recorded_width, text_hash, unit_row, write_shard
from tlcli.models.text import DEFAULT_TEXT_MODEL, load_sentence_transformer, model_key, resolve_text_model

Progress = Callable[[int], None]  # called with the number of texts encoded so far


def resolve_device(device: str) -> str:
    """"auto" -> this process's GPU, else the CPU (see tlcli.device)."""
    from tlcli.device import resolve_device as resolve

    return resolve(device)


def resolve_precision(precision: str, device: str) -> str:
    """``--precision`` for encoding texts on ``device`` (see tlcli.device.POLICY)."""
    from tlcli.device import resolve

    return resolve("encode_texts", device, precision).precision


# --- the model folder ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FolderLayout:
    """What tlcli needs to run a sentence-transformers folder itself."""

    folder: Path
    config: dict
    pooling: str  # "mean" | "cls"
    normalize: bool
    max_seq_length: int


def native_layout(name: str) -> FolderLayout | None:
    """The folder's layout when tlcli can run it without sentence-transformers, else None."""
    folder = Path(resolve_text_model(name)).expanduser()
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    if modules[0].get("path", "") not in ("", "."):
        return None
    if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu" \
            or config.get("position_embedding_type", "absolute") != "absolute":
        return None
    if not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file():
        return None
    try:
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        st_config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    modes = [key for key, value in pooling.items() if key.startswith("pooling_mode_") and value is True]
    mode = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(modes[0]) if len(modes) == 1 else None
    if mode is None or pooling.get("include_prompt", True) is False or st_config.get("do_lower_case"):
        return None
    max_len = int(st_config.get("max_seq_length") or 256)
    max_len = min(max_len, int(config.get("max_position_embeddings", 512)))
    return FolderLayout(folder, config, mode, len(kinds) == 3, max_len)


class FastTokenizer:
    """A ``tokenizers`` tokenizer: ids with special tokens (truncated to the model's length) for encoding,
    token character spans without them for chunking (the ``tlcli.data.documents.Tokenizer`` interface)."""

    def __init__(self, path: Path, max_length: int):
        from tokenizers import Tokenizer

        self._encode = Tokenizer.from_file(str(path))
        self._encode.no_padding()
        self._encode.enable_truncation(max_length)
        self._spans = Tokenizer.from_file(str(path))
        self._spans.no_padding()
        self._spans.no_truncation()
        self.pad_token_id = self._encode.token_to_id("[PAD]") or 0

    def ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._encode.encode_batch(texts, add_special_tokens=True)]

    def spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [list(e.offsets) for e in self._spans.encode_batch(texts, add_special_tokens=False)]


# --- the forward pass ----------------------------------------------------------------------------

def _torch_modules():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class BertLayer(nn.Module):
        def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.out = nn.Linear(hidden, hidden)
            self.norm1 = nn.LayerNorm(hidden, eps=eps)
            self.up = nn.Linear(hidden, intermediate)
            self.act = nn.GELU()
            self.down = nn.Linear(intermediate, hidden)
            self.norm2 = nn.LayerNorm(hidden, eps=eps)

        def forward(self, x, mask):
            batch, tokens, width = x.shape
            qkv = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
            x = self.norm1(x + self.out(attended.transpose(1, 2).reshape(batch, tokens, width)))
            return self.norm2(x + self.down(self.act(self.up(x))))

    class BertEncoder(nn.Module):
        """BertModel's encoder for inference: token ids and a padding mask in, last hidden states out."""

        def __init__(self, config: dict):
            super().__init__()
            hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
            self.word = nn.Embedding(config["vocab_size"], hidden)
            self.position = nn.Embedding(config["max_position_embeddings"], hidden)
            self.token_type = nn.Embedding(config.get("type_vocab_size", 2), hidden)
            self.norm = nn.LayerNorm(hidden, eps=eps)
            self.layers = nn.ModuleList(
                BertLayer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
                for _ in range(config["num_hidden_layers"]))

        def forward(self, ids, valid):
            x = self.word(ids) + self.position.weight[:ids.shape[1]] + self.token_type.weight[0]
            x = self.norm(x)
            # Which keys each text attends to, broadcast over heads and query positions. A boolean mask,
            # not an additive one: torch's CPU attention kernel is faster with it (3-4% of a forward, bf16 and
            # fp32, docs/rag-benchmarks.md).
            mask = valid[:, None, None, :]
            for layer in self.layers:
                x = layer(x, mask)
            return x

        def state_from_bert(self, tensors: dict) -> dict:
            """This module's state dict from a Hugging Face BertModel's tensors (query/key/value fused)."""
            prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""

            def take(name):
                if prefix + name not in tensors:
                    raise KeyError(name)
                return tensors[prefix + name]

            state = {"word.weight": take("embeddings.word_embeddings.weight"),
                     "position.weight": take("embeddings.position_embeddings.weight"),
                     "token_type.weight": take("embeddings.token_type_embeddings.weight"),
                     "norm.weight": take("embeddings.LayerNorm.weight"), "norm.bias": take("embeddings.LayerNorm.bias")}
            for i in range(len(self.layers)):
                p = f"encoder.layer.{i}."
                for part in ("weight", "bias"):
                    state[f"layers.{i}.qkv.{part}"] = torch.cat(
                        [take(f"{p}attention.self.{n}.{part}") for n in ("query", "key", "value")])
                    for ours, theirs in (("out", "attention.output.dense"), ("norm1", "attention.output.LayerNorm"),
                                         ("up", "intermediate.dense"), ("down", "output.dense"),
                                         ("norm2", "output.LayerNorm")):
                        state[f"layers.{i}.{ours}.{part}"] = take(f"{p}{theirs}.{part}")
            return state

    return BertEncoder


def load_bert_encoder(layout: FolderLayout, tensors: dict | None = None):
    """tlcli's encoder with the folder's weights, or with ``tensors`` (Hugging Face BERT key names) instead."""
    import torch
    from safetensors.torch import load_file

    # Built on the CPU, not on the "meta" device: building there imports torch._dynamo (and sympy), seconds
    # more than the random initialisation it would save. assign=True takes the loaded tensors without a copy.
    encoder = _torch_modules()(layout.config)
    try:
        state = encoder.state_from_bert(tensors if tensors is not None
                                        else load_file(str(layout.folder / "model.safetensors")))
        encoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    except KeyError as missing:
        raise UsageError(f"--model {layout.folder}: model.safetensors has no {missing.args[0]}; is it a BERT "
                         "sentence-transformers folder?") from None
    return encoder.eval().requires_grad_(False)


def pooled_rows(hidden, valid, pooling: str):
    """Last hidden states (N, L, D) float32 -> one L2-normalised row per text: the [CLS] state or the mean
    over real tokens. Rows are promised normalised (what the index's inner products need), Normalize
    module or not."""
    import torch

    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        weights = valid.unsqueeze(-1).float()
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def sentence_graph(layout: FolderLayout):
    """The encoder as one module for an export: ``(input_ids, attention_mask)`` int64 (N, L) -> the rows
    ``TextEmbedder.encode`` gives, float32, with open (unpacked) fp32 weights."""
    import torch

    class SentenceGraph(torch.nn.Module):
        def __init__(self, encoder, pooling: str):
            super().__init__()
            self.encoder, self.pooling = encoder, pooling

        def forward(self, input_ids, attention_mask):
            valid = attention_mask.bool()
            return pooled_rows(self.encoder(input_ids, valid).float(), valid, self.pooling)

    return SentenceGraph(load_bert_encoder(layout), layout.pooling).eval()


def tokenizer_files(folder: Path) -> dict[str, bytes]:
    """The tokenizer files of a model folder: tokenizer.json (what the ``tokenizers`` library reads) and,
    where present, what Hugging Face's AutoTokenizer reads beside it."""
    names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
    return {name: (Path(folder) / name).read_bytes() for name in names if (Path(folder) / name).is_file()}


# A few texts of the kinds people index (prose, code, a question, a command line, non-Latin script): int8
# calibration sees through them which input features of each linear layer carry outliers.
CALIBRATION_TEXTS = (
    "The quick brown fox jumps over the lazy dog.", "How do I catch an exception in Python?",
    "Install the package with pip, then run the command with --help to see its options.",
    "Rain is expected on Tuesday; bring an umbrella to the station.", "def main():\n    return 0",
    "東京 café naïve 123 %$# -- see section 4.2 (page 17) for the details.",
)


# --- the encoder ---------------------------------------------------------------------------------

class TextEmbedder:
    """``encode(texts)`` -> float32 (len(texts), dim), rows L2-normalised. ``queries=True``: for a few
    short texts at a time (search queries), where on a CPU ``auto`` means fp32: casting to bf16 and setting
    up its kernels cost more than bf16 saves on a dozen tokens (first query 0.4-0.7 s in fp32 against
    1.3-1.8 s in bf16, fresh processes on a loaded 2-core EPYC)."""

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, *, device: str = "cpu", precision: str = "auto",
                 batch_size: int | None = None, token_budget: int | None = None, queries: bool = False,
                 tensors: dict | None = None, max_length: int | None = None):
        """``tensors``: BERT weights to run instead of the folder's (a fine-tuned run's encoder with its LoRA
        adapters folded in); ``max_length``: truncate to fewer tokens than the folder's max_seq_length."""
        from tlcli.device import resolve, resolve_device

        self.model = model
        self._tensors, self._max_length = tensors, max_length
        if queries and precision == "auto" and resolve_device(device) == "cpu":
            precision = "fp32"
        self.placement = resolve("encode_texts", device, precision)
        self.device, self.precision = self.placement.device, self.placement.precision
        self.batch_size = batch_size or self.placement.batch_size
        self.token_budget = token_budget or self.placement.token_budget

    @property
    def key(self) -> str:
        """Identity of the model's weights (see ``tlcli.models.text.model_key``), without loading it."""
        return model_key(self.model)

    @cached_property
    def layout(self) -> FolderLayout | None:
        """The folder layout when this module runs the model itself (None: the library runs it)."""
        layout = native_layout(self.model)
        if layout is not None and self._max_length:
            from dataclasses import replace

            layout = replace(layout, max_seq_length=min(layout.max_seq_length, int(self._max_length)))
        return layout

    @cached_property
    def sentence_transformer(self):
        return load_sentence_transformer(self.model, self.device)

    @cached_property
    def tokenizer(self):
        """The library's (Hugging Face) tokenizer. Chunking uses ``chunk_tokenizer``, which needs no library."""
        tokenizer = getattr(self.sentence_transformer[0], "tokenizer", None)
        if tokenizer is None:
            raise UsageError(f"--model {self.model}: its first module has no tokenizer; chunking needs one")
        return tokenizer

    @cached_property
    def fast_tokenizer(self) -> FastTokenizer | None:
        layout = self.layout
        return FastTokenizer(layout.folder / "tokenizer.json", layout.max_seq_length) if layout else None

    @property
    def chunk_tokenizer(self):
        """A ``tlcli.data.documents.Tokenizer`` giving this model's token spans."""
        if self.fast_tokenizer is not None:
            return self.fast_tokenizer
        from tlcli.data.documents import HFTokenizer

        return HFTokenizer(self.tokenizer)

    @property
    def max_seq_length(self) -> int:
        if self.layout is not None:
            return self.layout.max_seq_length
        return int(getattr(self.sentence_transformer, "max_seq_length", None) or 256)

    @property
    def dimension(self) -> int:
        if self.layout is not None:
            return int(self.layout.config["hidden_size"])
        st = self.sentence_transformer
        # sentence-transformers 5 renamed the method; older releases only have the long name.
        getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(getter())

    @cached_property
    def network(self):
        """tlcli's forward pass, in this placement's precision (None: the library runs the model)."""
        if self.layout is None:
            if self.precision == "int8":
                raise UsageError(f"--precision int8: tlcli quantises only BERT-layout sentence-transformers folders "
                                 f"with model.safetensors and tokenizer.json, and {self.model} is not one; use fp32 "
                                 "or bf16")
            return None
        import torch

        encoder = load_bert_encoder(self.layout, self._tensors)
        if self.precision == "int8":
            from tlcli.models.int8 import int8_available, keep_freed_memory, quantize_linears

            if not int8_available():
                raise UsageError("--precision int8: this torch build has no CPU int8 matrix product "
                                 "(torch._int_mm); use fp32 or bf16")
            keep_freed_memory()
            return quantize_linears(encoder, lambda: self._forward(encoder, self.fast_tokenizer.ids(list(CALIBRATION_TEXTS))))
        dtype = self.placement.dtype
        encoder = encoder.to(self.device, dtype)
        from tlcli.models.packed import pack_for_inference, packing_available

        if self.device == "cpu" and packing_available(torch.device("cpu"), dtype):
            # oneDNN-packed weights: the same result (fp32: to rounding) without re-laying-out each weight
            # per call, and the feed-forward GELU inside its matrix product (benchmarks/rag.py).
            pack_for_inference(encoder, rows=self.token_budget)
            for layer in encoder.layers:
                layer.up.activation, layer.act = "gelu", torch.nn.Identity()
        return encoder

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.network is None:
            vectors = self.sentence_transformer.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                show_progress_bar=False)
            if progress is not None:
                progress(len(texts))
            return np.ascontiguousarray(vectors, dtype=np.float32)
        return self._encode_native(texts, progress)

    def _encode_native(self, texts: list[str], progress: Progress | None) -> np.ndarray:
        ids = self.fast_tokenizer.ids(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        done = 0
        network = self.network
        for batch in self._batches(order, ids):
            out[batch] = self._forward(network, [ids[i] for i in batch])
            done += len(batch)
            if progress is not None:
                progress(done)
        return out

    def _forward(self, network, ids: list[list[int]]) -> np.ndarray:
        """Pooled, L2-normalised float32 rows for token id lists, padded to the longest."""
        import torch

        width = max(len(row) for row in ids)
        rows = np.full((len(ids), width), self.fast_tokenizer.pad_token_id, dtype=np.int64)
        lengths = np.array([len(row) for row in ids])
        for r, row in enumerate(ids):
            rows[r, :lengths[r]] = row
        with torch.inference_mode():
            input_ids = torch.from_numpy(rows).to(self.device)
            valid = torch.arange(width, device=self.device)[None, :] < torch.from_numpy(lengths).to(self.device)[:, None]
            hidden = network(input_ids, valid).float()
            return pooled_rows(hidden, valid, self.layout.pooling).cpu().numpy()

    def _batches(self, order: list[int], ids: list[list[int]]):
        """Consecutive runs of ``order`` (longest first), each as long as batch_size or, for short texts,
        as many as fit in token_budget padded tokens."""
        batch: list[int] = []
        limit = self.batch_size
        for i in order:
            if not batch:
                limit = max(self.batch_size, self.token_budget // max(len(ids[i]), 1))
            batch.append(i)
            if len(batch) >= limit:
                yield batch
                batch = []
        if batch:
            yield batch


# --- the cached encoder (text commands) ----------------------------------------------------------

@dataclass
class Embedder:
    """``encode(texts)`` -> float32 array (len(texts), dim), each row L2-normalised; cached on disk under
    ``cache_dir("text-embeddings")/<model key>/`` (safetensors rows + a JSON list of the texts' sha256)."""

    model: str = DEFAULT_TEXT_MODEL
    device: str = "cpu"
    batch_size: int = 64
    cache: bool = True

    def __post_init__(self):
        self._encoder: TextEmbedder | None = None
        self._memory: dict[str, np.ndarray] = {}
        self._index: dict[str, tuple[Path, int]] | None = None  # cached text hash -> (shard, row)
        self._width: int | None = None  # the model's embedding width, once known
        self._damaged = 0

    @property
    def encoder(self) -> TextEmbedder:
        # fp32, so that cached rows do not depend on the machine that computed them.
        if self._encoder is None:
            self._encoder = TextEmbedder(self.model, device=self.device, precision="fp32", batch_size=self.batch_size)
        return self._encoder

    @property
    def sentence_transformer(self):
        return self.encoder.sentence_transformer

    @property
    def cache_folder(self) -> Path:
        from tlcli.runs.paths import cache_dir

        return cache_dir("text-embeddings") / model_key(self.model)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for ``texts``: from memory, then from the disk cache (only the rows asked for are read),
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
                    write_shard(self.cache_folder, list(missing.keys()), rows)
            if not self._drop_foreign_widths(keys):
                break
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys]).astype(np.float32, copy=False)

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def _load_cached(self, keys) -> None:
        wanted = set(keys)
        if not wanted:
            return
        if self._index is None:
            self._index = index_shards(self.cache_folder)
        by_shard: dict[Path, list[tuple[str, int]]] = {}
        for key in wanted:
            if key in self._index:
                shard, row = self._index[key]
                by_shard.setdefault(shard, []).append((key, row))
        for shard, wanted_rows in by_shard.items():
            rows = read_rows(shard, [row for _, row in wanted_rows])
            if rows is None:
                continue  # torn or foreign shard: those texts are simply embedded again
            for (key, _), vector in zip(wanted_rows, rows):
                if unit_row(vector):  # a corrupt row is recomputed (and reported), never used
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
            self._width = recorded_width(self.cache_folder) or self.encoder.dimension
        wrong = [k for k in dict.fromkeys(keys) if k in self._memory and self._memory[k].shape[0] != self._width]
        for key in wrong:
            del self._memory[key]
        self._damaged += len(wrong)
        self._report_damaged()
        return bool(wrong)

    def _report_damaged(self) -> None:
        if self._damaged:
            from tlcli.console.output import warn

            warn(f"text-embedding cache: {self._damaged} damaged row{'s' if self._damaged > 1 else ''} (wrong width, "
                 f"not unit length or not finite) under {self.cache_folder}; computing them again")
            self._damaged = 0

    @property
    def dimension(self) -> int:
        if self._memory:
            return next(iter(self._memory.values())).shape[0]
        return self.encoder.dimension
