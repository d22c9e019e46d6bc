"""The RAG embedder against SentenceTransformer.encode on the same texts and model."""

from __future__ import annotations

import numpy as np
import pytest

from tlcli.console.errors import UsageError
from tlcli.models.embedder import TextEmbedder

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
    network = TextEmbedder("all-MiniLM-L6-v2", precision="fp32").network
    packed = [m for m in network.modules() if isinstance(m, PackedLinear)]
    assert len(packed) == 6 * 4 and not any(type(m) is torch.nn.Linear for m in network.modules())
    assert sum(m.activation == "gelu" for m in packed) == 6  # one feed-forward GELU per layer


def test_the_tokenizers_library_gives_the_library_tokenizer_ids_and_spans():
    embedder = TextEmbedder("all-MiniLM-L6-v2", precision="fp32")
    texts = TEXTS[:6]
    expected = embedder.tokenizer(texts, truncation=True, max_length=embedder.max_seq_length)["input_ids"]
    assert embedder.fast_tokenizer.ids(texts) == expected
    offsets = embedder.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert embedder.chunk_tokenizer.spans(texts) == [[tuple(o) for o in row] for row in offsets]


def test_bf16_agrees_with_the_library(reference):
    # One copy of the texts: on a CPU without bf16 instructions bf16 is emulated and slow.
    vectors = TextEmbedder("all-MiniLM-L6-v2", precision="bf16").encode(TEXTS[:6])
    assert np.min(np.sum(vectors * reference[:6], axis=1)) > 0.99


def test_bf16_with_cpu_kernels_stays_within_the_precision_bar(reference):
    vectors = TextEmbedder("all-MiniLM-L6-v2", precision="bf16").encode(TEXTS)
    assert np.min(np.sum(vectors * reference, axis=1)) >= 0.999


def test_int8_stays_close_to_fp32(reference):
    from tlcli.models.int8 import activation_steps

    cosines = np.sum(TextEmbedder("all-MiniLM-L6-v2", precision="int8").encode(TEXTS) * reference, axis=1)
    if activation_steps() > 200:  # 8-bit activations (VNNI): the empty text 0.9981, real ones 0.9992 and up
        assert np.mean(cosines) >= 0.999 and np.min(cosines) >= 0.997
    else:  # 7-bit activations where the int8 product saturates (AVX2): mean 0.9975, lowest 0.9943
        assert np.mean(cosines) >= 0.997 and np.min(cosines) >= 0.993


def test_int8_without_an_int8_product_in_torch_is_a_one_line_error(monkeypatch):
    import tlcli.models.int8 as int8

    monkeypatch.setattr(int8, "int8_available", lambda: False)
    with pytest.raises(UsageError, match="--precision int8: this torch build has no CPU int8 matrix product"):
        TextEmbedder("all-MiniLM-L6-v2", precision="int8").encode(["hello"])


def test_int8_runs_every_linear_in_int8_with_the_gelu_inside_and_layernorm_inputs_smoothed():
    import torch

    from tlcli.models.int8 import Int8Linear

    network = TextEmbedder("all-MiniLM-L6-v2", precision="int8").network
    layers = {name: m for name, m in network.named_modules() if isinstance(m, Int8Linear)}
    assert len(layers) == 6 * 4 and not any(type(m) is torch.nn.Linear for m in network.modules())
    assert {name.rsplit(".", 1)[1] for name, m in layers.items() if m.inverse_smooth is not None} == {"qkv", "up"}
    assert {name.rsplit(".", 1)[1] for name, m in layers.items() if m.gelu} == {"up"}
    assert all(m.group == 256 for name, m in layers.items() if name.endswith(".down"))


def test_a_model_folder_of_another_layout_goes_through_the_library(tmp_path):
    import shutil

    from tlcli.models.text import resolve_text_model

    folder = tmp_path / "model"
    shutil.copytree(resolve_text_model("all-MiniLM-L6-v2"), folder)
    (folder / "tokenizer.json").unlink()  # no fast tokenizer file: tlcli cannot run it itself
    embedder = TextEmbedder(str(folder), precision="fp32")
    assert embedder.network is None
    assert embedder.encode(["hello"]).shape == (1, 384)
    with pytest.raises(UsageError, match="--precision int8: .*use fp32 or bf16"):
        TextEmbedder(str(folder), precision="int8").encode(["hello"])


def test_queries_on_a_cpu_run_in_fp32_unless_asked():
    assert TextEmbedder("all-MiniLM-L6-v2", queries=True).precision == "fp32"
    assert TextEmbedder("all-MiniLM-L6-v2", queries=True, precision="bf16").precision == "bf16"
