"""The RAG embedder against SentenceTransformer.encode on the same texts and model."""

from __future__ import annotations

import numpy as np
import pytest

from tlcli import hardware
from tlcli.embedder import TextEmbedder, resolve_precision
from tlcli.errors import UsageError

TEXTS = ["short", "a somewhat longer sentence about retrieval and indexes",
         "word " * 300,  # longer than the model's 256 tokens: truncated like the library does
         "", "Unicode: café, naïve, 東京", "the quick brown fox " * 20] * 3


@pytest.fixture(scope="module")
def reference():
    embedder = TextEmbedder("all-MiniLM-L6-v2", precision="fp32")
    return embedder.sentence_transformer.encode(TEXTS, batch_size=4, normalize_embeddings=True,
                                                convert_to_numpy=True)


def test_fp32_matches_the_library_in_input_order(reference):
    embedder = TextEmbedder("all-MiniLM-L6-v2", precision="fp32", batch_size=2, token_budget=64)
    vectors = embedder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(vectors, reference, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_fp32_on_the_cpu_runs_packed_linears_with_the_gelu_fused():
    import torch

    from tlcli.models.packed import PackedLinear, packing_available

    if not packing_available(torch.device("cpu"), torch.float32):
        pytest.skip("this torch has no oneDNN packed linear")
    transformer, _ = TextEmbedder("all-MiniLM-L6-v2", precision="fp32")._fast_parts
    packed = [m for m in transformer.modules() if isinstance(m, PackedLinear)]
    assert len(packed) == 6 * 6 + 1 and not any(type(m) is torch.nn.Linear for m in transformer.modules())
    assert sum(m.activation == "gelu" for m in packed) == 6  # one feed-forward GELU per layer


def test_bf16_agrees_with_the_library(reference):
    # One copy of the texts: on a CPU without bf16 instructions bf16 is emulated and slow.
    vectors = TextEmbedder("all-MiniLM-L6-v2", precision="bf16").encode(TEXTS[:6])
    assert np.min(np.sum(vectors * reference[:6], axis=1)) > 0.99


@pytest.mark.parametrize("amx, chosen", [(True, "bf16"), (False, "fp32")])
def test_precision_choice(monkeypatch, amx, chosen):
    monkeypatch.setattr(hardware, "cpu_has_amx", lambda: amx)
    assert resolve_precision("auto", "cpu") == chosen  # bf16 only where it measured faster: AMX
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(UsageError, match="fp16"):
        resolve_precision("fp16", "cpu")
