"""Embed many texts fast with a sentence-transformers model: the embedder RAG indexes with.

The model is loaded by ``tlcli.models.text`` (offline MiniLM by default, any sentence-transformers name
or folder). For the common layout -- a transformer, mean/CLS pooling, optional normalisation -- the
forward pass is run here instead of through ``SentenceTransformer.encode``:

- every text is tokenised once, up front, then batched longest first so each batch pads to lengths close
  to its own; a batch holds at most ``token_budget`` tokens, so short texts go in big batches;
- in float32 by default on a CPU (the library's result to ~1e-7 in cosine); bf16 on CUDA, on a CPU with
  AMX, or with ``precision="bf16"``, with pooling and normalisation in float32; on a CPU the linear layers
  run with oneDNN-packed weights (tlcli.models.packed);
- rows come back float32, L2-normalised, in the order of the input.

Any other layout (a Dense layer, another pooling) falls back to ``SentenceTransformer.encode``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Sequence

import numpy as np

from tlcli.errors import UsageError
from tlcli.models.text import DEFAULT_TEXT_MODEL, load_sentence_transformer, model_key


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu" (without importing torch where none can exist)."""
    if device != "auto":
        return device
    from tlcli.hardware import no_gpu_possible

    if no_gpu_possible():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """"auto" -> "bf16" on a CUDA device or a CPU with AMX, "fp32" elsewhere.

    Measured with this small BERT (MiniLM, benchmarks/rag.py, the README has the figures): on a CPU with
    AMX, bf16 runs about 3x as fast as fp32 (cosine to the library's fp32 vectors >= 0.9999); with AVX-512 BF16
    alone it runs 0.7x, so fp32 stays the choice there. ``--precision bf16`` still asks for it.
    """
    if precision not in ("auto", "bf16", "fp32", "fp16"):
        raise UsageError(f"--precision {precision}: expected auto, bf16, fp16 or fp32")
    if precision == "fp16" and not device.startswith("cuda"):
        raise UsageError(f"--precision fp16 needs a CUDA device (got --device {device}); use bf16 or fp32")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16"
    from tlcli.hardware import cpu_has_amx

    return "bf16" if cpu_has_amx() else "fp32"


class TextEmbedder:
    """``encode(texts)`` -> float32 (len(texts), dim), rows L2-normalised."""

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, *, device: str = "cpu", precision: str = "auto",
                 batch_size: int | None = None, token_budget: int | None = None):
        self.model = model
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        # Measured with benchmarks/rag.py on CPUs: in fp32, 16 texts (2,048 tokens) a batch are 8% faster
        # than 32 (less padding, activations that stay in cache) and 32 were faster than 64; bf16 with AMX
        # does best at 32 (4,096). A GPU wants bigger batches.
        cpu_default = (16, 2048) if self.precision == "fp32" else (32, 4096)
        default_size, default_budget = cpu_default if self.device == "cpu" else (64, 8192)
        self.batch_size = batch_size or default_size
        self.token_budget = token_budget or default_budget

    @property
    def key(self) -> str:
        """Identity of the model's weights (see ``tlcli.models.text.model_key``), without loading it."""
        return model_key(self.model)

    @cached_property
    def sentence_transformer(self):
        return load_sentence_transformer(self.model, self.device)

    @cached_property
    def tokenizer(self):
        tokenizer = getattr(self.sentence_transformer[0], "tokenizer", None)
        if tokenizer is None:
            raise UsageError(f"--model {self.model}: its first module has no tokenizer; chunking needs one")
        return tokenizer

    @property
    def max_seq_length(self) -> int:
        return int(getattr(self.sentence_transformer, "max_seq_length", None) or 256)

    @property
    def dimension(self) -> int:
        st = self.sentence_transformer
        # sentence-transformers 5 renamed the method; older releases only have the long name.
        getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(getter())

    @cached_property
    def _fast_parts(self):
        """(transformer, pooling mode, normalise) when this module can run the model itself, else None."""
        import copy

        import torch

        modules = list(self.sentence_transformer)
        names = [type(m).__name__ for m in modules]
        if len(modules) not in (2, 3) or names[0] != "Transformer" or names[1] != "Pooling":
            return None
        if len(modules) == 3 and names[2] != "Normalize":
            return None
        pooling = modules[1]
        mode = getattr(pooling, "pooling_mode", None) or (
            "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else
            "cls" if getattr(pooling, "pooling_mode_cls_token", False) else None)
        if mode not in ("mean", "cls") or getattr(pooling, "include_prompt", True) is False:
            return None
        transformer = modules[0].auto_model
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        from tlcli.models.packed import fuse_intermediate_gelu, pack_for_inference, packing_available

        pack = self.device == "cpu" and packing_available(torch.device("cpu"), dtype)
        if dtype != torch.float32 or pack:
            # A copy: the cached SentenceTransformer is shared with other callers, who expect its own
            # fp32 nn.Linear layers.
            transformer = copy.deepcopy(transformer).to(dtype)
        if pack:
            # oneDNN-packed weights: the same result (fp32: to rounding), without re-laying-out each weight
            # per call, and the feed-forward GELU inside its matrix product (benchmarks/rag.py).
            pack_for_inference(transformer, rows=self.token_budget)
            fuse_intermediate_gelu(transformer)
        transformer.eval()
        return transformer, mode

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = self._fast_parts
        if parts is None:
            return self._encode_with_library(texts)
        return self._encode_fast(texts, *parts)

    def _encode_with_library(self, texts: list[str]) -> np.ndarray:
        vectors = self.sentence_transformer.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                                   normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_fast(self, texts: list[str], transformer, mode: str) -> np.ndarray:
        import torch

        encoded = self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self.max_seq_length,
                                 return_attention_mask=False, return_token_type_ids=False, verbose=False)
        ids = encoded["input_ids"]
        pad_id = self.tokenizer.pad_token_id or 0
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for batch in self._batches(order, ids):
                width = len(ids[batch[0]])
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                    mask[row, :len(ids[i])] = 1
                input_ids, mask = input_ids.to(self.device), mask.to(self.device)
                hidden = transformer(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
                if mode == "cls":
                    pooled = hidden[:, 0]
                else:
                    weights = mask.unsqueeze(-1).float()
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[batch] = pooled.cpu().numpy()
        return out

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
