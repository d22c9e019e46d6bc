"""RAG benchmark: embedding speed, query latency/recall per index type, unchanged re-index, memory.

Every figure is a ratio or a comparison measured in this one run, so a busy machine shifts both sides:

1. embedding chunks/s: tlcli's TextEmbedder (fp32, int8, and bf16 on CPUs that have it) against
   SentenceTransformer.encode on the same chunks of Python's docs topics and the same model
   (all-MiniLM-L6-v2), in alternating rounds, best of --rounds; on CPUs with bf16 also the library with its
   model cast to bf16 (what a user of the library would do for speed), so bf16 is compared with bf16; the
   cosine agreement of the vectors with the library's fp32 ones; and the model's linear layers alone on the
   same tokens, the bound no exact fp32 speed-up can pass on this machine. ``default`` names the precision
   ``--precision auto`` picks here. Beside them ONNX Runtime (CPU execution provider) on MiniLM exported
   with ``torch.onnx.export``: the plain export, after ORT's BERT fusion, and that quantised with
   ``quantize_dynamic`` (int8), fed the same token batches (fastembed, which ships such models, is not
   installed, and its models would be downloaded: nothing here uses the network);
2. query latency p50/p99 (one query at a time) and recall@10 at --n chunks for Flat, HNSW and IVF-PQ
   (faiss, inside IndexIDMap2 as the index stores them) against NumPy brute force; the vectors are the
   real MiniLM vectors of the docs chunks plus synthetic ones drawn from a Gaussian with their mean and
   covariance, normalised;
3. re-index of an unchanged --files-file corpus: the index state is written directly (random vectors: an
   unchanged re-run never embeds, so the vectors do not matter), then `build_index` runs for real;
4. bytes per chunk of each index type (faiss's serialised index) and of the SQLite sidecar;
5. recall@10 of int8 (and bf16, and ONNX Runtime's) indexes of the pydoc chunks against the fp32 index,
   the tests' pydoc questions as queries; the cold start of `tlcli rag search` against `python -c "import
   torch"`; and `tlcli rag serve` driven by an MCP client: start to ready, ready to the first search.

    .venv/bin/python benchmarks/rag.py [--n 100000] [--files 10000] [--rounds 3] [--skip PART] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def machine() -> str:
    from tlcli.hardware import cpu_has_bf16

    model = "cpu"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, bf16 {'yes' if cpu_has_bf16() else 'no'}, {platform.python_version()}"


def docs_chunks(limit: int | None = None) -> list[str]:
    from pydoc_data.topics import topics

    from tlcli.data.documents import _load_plain, chunk_documents
    from tlcli.models.embedder import TextEmbedder

    documents = [_load_plain(text, name) for name, text in topics.items()]
    from tlcli_rag.config import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP

    tokenizer = TextEmbedder("all-MiniLM-L6-v2").chunk_tokenizer
    chunks = [c for cs in chunk_documents(documents, tokenizer, max_tokens=DEFAULT_CHUNK_TOKENS,
                                          overlap=DEFAULT_OVERLAP) for c in cs]
    texts = [f"{c.heading_text}\n{c.text}" for c in chunks]
    return texts[:limit] if limit else texts


# --- 1. embedding ---------------------------------------------------------------------------------

def bf16_native() -> bool:
    """Whether bf16 runs on this CPU's own instructions. Without them (or with oneDNN held below them,
    ONEDNN_MAX_CPU_ISA=AVX2, to see what an AVX2-only CPU runs) bf16 is emulated and many times slower:
    nothing to learn."""
    from tlcli.hardware import cpu_has_bf16

    return cpu_has_bf16() and not os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2")


def bench_embedding(texts: list[str], rounds: int, onnx_dir: Path | None = None) -> dict:
    import copy

    import torch

    from tlcli.device import resolve
    from tlcli.models.embedder import TextEmbedder

    fp32 = TextEmbedder("all-MiniLM-L6-v2", precision="fp32")
    library = fp32.sentence_transformer

    def library_encode(model):
        return lambda t: model.encode(t, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                      show_progress_bar=False)

    runs = {"sentence-transformers encode": library_encode(library), "tlcli fp32": fp32.encode}
    if bf16_native():
        runs["sentence-transformers encode, model in bf16"] = library_encode(
            copy.deepcopy(library).to(torch.bfloat16))
        runs["tlcli bf16"] = TextEmbedder("all-MiniLM-L6-v2", precision="bf16").encode
    runs["tlcli int8"] = TextEmbedder("all-MiniLM-L6-v2", precision="int8").encode
    if onnx_dir is not None:
        for name, path in onnx_models(onnx_dir).items():
            runs[name] = OnnxEncoder(path, fp32).encode
    short = texts[:32]  # warm-up: first calls allocate and pick kernels
    for run in runs.values():
        run(short)
    vectors: dict[str, np.ndarray] = {}
    bound = linear_layers(fp32, texts)
    runs[LINEAR_BOUND] = lambda _texts: bound()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            result = run(texts)
            seconds[name].append(time.perf_counter() - start)
            if result is not None:
                vectors[name] = np.asarray(result, dtype=np.float32)
    library_s = seconds["sentence-transformers encode"]
    reference = vectors["sentence-transformers encode"]
    out = {"texts": len(texts), "tokens": token_count(fp32, texts), "rounds": rounds,
           "default": f"tlcli {resolve('encode_texts', 'cpu').precision}",
           "chunks_per_s": {k: round(len(texts) / min(v), 1) for k, v in seconds.items()},
           # Each round runs every method back to back, so a round's ratio compares like with like on a
           # shared machine; the median over rounds is the figure to quote, best-of-rounds its companion.
           "speedup_median": {k: round(statistics.median(a / b for a, b in zip(library_s, v)), 2)
                              for k, v in seconds.items()},
           "speedup_best": {k: round(min(library_s) / min(v), 2) for k, v in seconds.items()},
           "min_cosine_vs_library": {k: float(np.min(np.sum(v * reference, axis=1))) for k, v in vectors.items()},
           "mean_cosine_vs_library": {k: round(float(np.mean(np.sum(v * reference, axis=1))), 5)
                                      for k, v in vectors.items()}}
    return out


# --- ONNX Runtime ---------------------------------------------------------------------------------

ONNX_FP32 = "onnxruntime fp32"
ONNX_FUSED = "onnxruntime fp32, BERT fusion"
ONNX_INT8 = "onnxruntime int8 (quantize_dynamic)"


def onnx_models(folder: Path) -> dict[str, Path]:
    """MiniLM as ONNX, made once in ``folder``: the library's BertModel (eager attention, so ONNX Runtime's
    transformer optimizer can fuse it) with mean pooling and normalisation in the graph, exported by
    ``torch.onnx.export`` (the TorchScript exporter: the dynamo one needs onnxscript, not installed) with
    dynamic batch and sequence axes; the same graph after ONNX Runtime's BERT fusion (``optimize_model``:
    attention, embedding + LayerNorm, bias + GELU, skip + LayerNorm fused); and that one quantised by
    ``onnxruntime.quantization.quantize_dynamic`` (int8 weights per output channel, activations quantised
    per call)."""
    import warnings

    folder.mkdir(parents=True, exist_ok=True)
    paths = {ONNX_FP32: folder / "minilm.onnx", ONNX_FUSED: folder / "minilm.fused.onnx",
             ONNX_INT8: folder / "minilm.fused.int8.onnx"}
    if all(path.exists() for path in paths.values()):
        return paths
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import BertModel

    from tlcli.models.text import resolve_text_model

    bert = BertModel.from_pretrained(resolve_text_model("all-MiniLM-L6-v2"), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0], [101, 2023, 2003, 1037, 3231, 102]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation note
        torch.onnx.export(Pooled().eval(), (ids, (ids != 0).long()), str(paths[ONNX_FP32]), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"}, "embedding": {0: "batch"}},
                          opset_version=17)
    config = bert.config
    fused = optimize_model(str(paths[ONNX_FP32]), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size)
    fused.save_model_to_file(str(paths[ONNX_FUSED]))
    # Weights per output channel: per tensor (the default), the cosine to fp32 is 0.94 on the pydoc chunks.
    quantize_dynamic(str(paths[ONNX_FUSED]), str(paths[ONNX_INT8]), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops have no shape info
    return paths


class OnnxEncoder:
    """An ONNX Runtime session fed exactly like tlcli's encoder: the same token ids, longest first, the same
    batches (``like``: a TextEmbedder whose tokenizer and batching it borrows), rows back in input order."""

    def __init__(self, path: Path, like):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.like = like

    def encode(self, texts: list[str]) -> np.ndarray:
        tokenizer = self.like.fast_tokenizer
        ids = tokenizer.ids(list(texts))
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty((len(ids), 384), dtype=np.float32)
        for batch in self.like._batches(order, ids):
            width = max(len(ids[i]) for i in batch)
            rows = np.full((len(batch), width), tokenizer.pad_token_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for r, i in enumerate(batch):
                rows[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = 1
            out[batch] = self.session.run(None, {"input_ids": rows, "attention_mask": mask})[0]
        return out


LINEAR_BOUND = "linear layers alone (a bound)"


def token_count(embedder, texts: list[str]) -> int:
    return sum(len(row) for row in embedder.fast_tokenizer.ids(texts))


def linear_layers(embedder, texts: list[str]):
    """A function that runs the encoder's linear layers alone over these texts' tokens (no padding,
    8192-row blocks, the fastest kernels tlcli has: oneDNN-packed where available). Any exact fp32
    implementation of the model does at least these matrix products, so len(texts) / its time bounds chunks/s
    on this machine, and that over the library's chunks/s is the most any fp32 speed-up could reach."""
    import torch

    from tlcli.models.packed import PackedLinear, packing_available

    model = embedder.sentence_transformer[0].auto_model
    linears = [m for m in getattr(model, "encoder", model).modules() if type(m) is torch.nn.Linear]
    if packing_available(torch.device("cpu"), torch.float32):
        linears = [PackedLinear.from_linear(m, 8192) for m in linears]
    tokens = token_count(embedder, texts)
    inputs = {m.in_features: torch.randn(8192, m.in_features) for m in linears}

    @torch.inference_mode()
    def run() -> None:
        for first in range(0, tokens, 8192):
            rows = min(8192, tokens - first)
            for layer in linears:
                layer(inputs[layer.in_features][:rows])

    run()  # warm-up
    return run


# --- 2. query latency ------------------------------------------------------------------------------

def corpus_vectors(real: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean, cov = real.mean(0), np.cov(real, rowvar=False)
    synthetic = rng.multivariate_normal(mean, cov, size=max(0, n - len(real)), method="cholesky").astype(np.float32)
    vectors = np.vstack([real[:n], synthetic])
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def bench_queries(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> list[dict]:
    import faiss

    from tlcli_rag.store import new_faiss_index

    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k] + 1

    def timed(search) -> tuple[list[float], list[np.ndarray]]:
        times, found = [], []
        for q in queries:
            start = time.perf_counter()
            found.append(search(q))
            times.append((time.perf_counter() - start) * 1e3)
        return times, found

    def numpy_search(q):
        scores = vectors @ q
        top = np.argpartition(-scores, k)[:k]
        return ids[top[np.argsort(-scores[top])]]

    rows = []
    times, found = timed(numpy_search)
    rows.append(_row("numpy brute force", times, found, exact, 0.0, vectors.nbytes))
    for kind in ("flat", "hnsw", "ivf-pq"):
        start = time.perf_counter()
        index = new_faiss_index(kind, vectors.shape[1], training=vectors if kind == "ivf-pq" else None)
        index.add_with_ids(vectors, ids)
        build = time.perf_counter() - start
        size = len(faiss.serialize_index(index))
        times, found = timed(lambda q: index.search(q[None], k)[1][0])
        rows.append(_row(f"faiss {kind}", times, found, exact, build, size))
    return rows


def _row(name, times, found, exact, build_s, size) -> dict:
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / len(e) for f, e in zip(found, exact)]))
    return {"index": name, "p50_ms": round(statistics.median(times), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3), "recall@10": round(recall, 4),
            "build_s": round(build_s, 1), "bytes": size}


# --- int8 against fp32 ----------------------------------------------------------------------------

def bench_int8_recall(texts: list[str], k: int = 10, onnx_dir: Path | None = None) -> dict:
    """recall@10 of an int8 index (chunks and queries embedded with --precision int8) against the fp32
    index, on the pydoc chunks with the tests' 50 pydoc questions as queries; the same for bf16 and, with
    ``onnx_dir``, for ONNX Runtime's int8 and fused fp32 models. Also the mean cosine of each to fp32."""
    from tlcli.models.embedder import TextEmbedder

    questions = [json.loads(line)["query"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    fp32 = TextEmbedder("all-MiniLM-L6-v2", precision="fp32")
    encoders = {"fp32": fp32.encode, "int8": TextEmbedder("all-MiniLM-L6-v2", precision="int8").encode}
    if bf16_native():
        encoders["bf16"] = TextEmbedder("all-MiniLM-L6-v2", precision="bf16").encode
    if onnx_dir is not None:
        for name, path in onnx_models(onnx_dir).items():
            if name != ONNX_FP32:  # the plain export computes what the fused one does
                encoders[name] = OnnxEncoder(path, fp32).encode
    out, cosine, lowest = {}, {}, {}
    exact = reference = None
    for name, encode in encoders.items():
        chunks = encode(texts)
        top = np.argsort(-(encode(questions) @ chunks.T), axis=1)[:, :k]
        if exact is None:
            exact, reference = top, chunks
            continue
        out[name] = round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, exact)])), 4)
        cosine[name] = round(float(np.mean(np.sum(chunks * reference, axis=1))), 5)
        lowest[name] = round(float(np.min(np.sum(chunks * reference, axis=1))), 5)
    return {"chunks": len(texts), "queries": len(questions), "recall@10_vs_fp32": out, "mean_cosine_vs_fp32": cosine,
            "min_cosine_vs_fp32": lowest}


QUESTIONS = Path(__file__).resolve().parents[1] / "tests" / "rag" / "pydoc_questions.jsonl"


# --- cold start ------------------------------------------------------------------------------------

def small_index() -> Path:
    """An index of 20 pydoc topics (built once per run) for the start-up measurements."""
    global _SMALL_INDEX
    if _SMALL_INDEX is None:
        from pydoc_data.topics import topics

        from tlcli_rag.build import IndexConfig, build_index

        work = Path(tempfile.mkdtemp(prefix="tlcli-rag-cold-"))
        for name, text in list(topics.items())[:20]:
            (work / "topics").mkdir(exist_ok=True)
            (work / "topics" / f"{name}.txt").write_text(text, encoding="utf-8")
        build_index(IndexConfig(paths=[str(work / "topics")], index=str(work / ".idx")))
        _SMALL_INDEX = work / ".idx"
    return _SMALL_INDEX


_SMALL_INDEX: Path | None = None


def bench_cold_start(rounds: int = 5) -> dict:
    """Wall time of a fresh `tlcli rag search "q" --index IDX` process against `python -c "import torch"`,
    alternating, median of ``rounds`` each (the index: 20 pydoc topics)."""
    import subprocess
    import sys

    index = small_index()
    commands = {"import torch": [sys.executable, "-c", "import torch"],
                "rag search": [sys.executable, "-m", "tlcli", "rag", "search", "how do I catch an exception",
                               "--index", str(index), "--json"]}
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - start)
    medians = {name: round(statistics.median(v), 2) for name, v in seconds.items()}
    return {"rounds": rounds, "median_s": medians, "search_minus_torch_s": round(medians["rag search"] - medians["import torch"], 2),
            "all_s": {name: [round(t, 2) for t in v] for name, v in seconds.items()}}


def bench_serve(rounds: int = 3) -> dict:
    """`tlcli rag serve` in a fresh process per round, driven by the MCP client library over stdio: seconds
    from the start to *ready* (the answer to ``initialize``: the server reads its stdin only once its
    warm-up is done), from ready to the first search's answer, and for a second search; median of rounds."""
    import asyncio
    import sys

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    index = small_index()
    params = StdioServerParameters(command=sys.executable, args=["-m", "tlcli", "rag", "serve", "--index", str(index)],
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})

    async def once() -> tuple[float, float, float]:
        with open(os.devnull, "w") as errlog:
            start = time.perf_counter()
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    ready = time.perf_counter()
                    first = await session.call_tool("search", {"query": "how do I catch an exception", "k": 5})
                    answered = time.perf_counter()
                    await session.call_tool("search", {"query": "what does the with statement do", "k": 5})
                    second = time.perf_counter()
        assert "hits" in first.content[0].text
        return ready - start, answered - ready, second - answered

    times = [asyncio.run(once()) for _ in range(rounds)]
    names = ("start_to_ready_s", "ready_to_first_search_s", "second_search_s")
    return {"rounds": rounds, **{name: round(statistics.median(t[i] for t in times), 3) for i, name in enumerate(names)},
            "all": [[round(x, 3) for x in t] for t in times]}


# --- 3. unchanged re-index ------------------------------------------------------------------------

def bench_reindex(files: int) -> dict:
    from tlcli.data.documents import Chunk, file_sha256, find_documents
    from tlcli.models.text import model_key
    from tlcli_rag.build import IndexConfig, build_index
    from tlcli_rag.store import FileRecord, IndexWriter, Manifest

    work = Path(tempfile.mkdtemp(prefix="tlcli-rag-bench-"))
    old = os.getcwd()
    os.chdir(work)
    try:
        for n in range(files):
            folder = Path("corpus") / f"d{n // 500:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"note{n:05d}.md").write_text(f"# Note {n}\n\n" + f"word{n} " * 120, encoding="utf-8")
        found, _ = find_documents(["corpus"])
        manifest = Manifest(generation=1, model="all-MiniLM-L6-v2", model_key=model_key("all-MiniLM-L6-v2"),
                            dimension=384, index_type="flat", chunk_tokens=200, overlap=30)
        rng = np.random.default_rng(0)
        with IndexWriter(Path(".tlcli-index")) as writer:
            writer.begin(manifest, fresh=True)
            for file in found:
                vector = rng.normal(size=(1, 384)).astype(np.float32)
                chunk = Chunk(file.source, 0, 10, 1, 3, ("Note",), "text")
                writer.add_file(FileRecord(file.source, file_sha256(file.path), file.size, file.mtime), [chunk],
                                vector / np.linalg.norm(vector))
            writer.commit()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            summary = build_index(IndexConfig(paths=["corpus"], index=".tlcli-index"))
            times.append(time.perf_counter() - start)
        assert summary.unchanged == files and summary.embedded == 0
        return {"files": files, "seconds_best": round(min(times), 3), "seconds_all": [round(t, 3) for t in times]}
    finally:
        os.chdir(old)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="chunks in the latency benchmark")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-texts", type=int, default=256, help="chunks embedded per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recall-texts", type=int, default=0, help="pydoc chunks in the int8 recall check (0: all)")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--skip", action="append", default=[],
                        help="embedding | onnx | int8 | coldstart | serve | queries | reindex")
    parser.add_argument("--onnx-dir", type=Path, help="keep the exported ONNX models here (made once)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report: dict = {"machine": machine()}
    print(f"# {report['machine']}", flush=True)
    texts = docs_chunks()
    # ONNX Runtime's models are exported once per run (or kept in --onnx-dir), for speed and for recall.
    onnx_dir = None if "onnx" in args.skip else (args.onnx_dir or Path(tempfile.mkdtemp(prefix="tlcli-onnx-")))
    if "embedding" not in args.skip:
        report["embedding"] = bench_embedding(texts[:args.embed_texts], args.rounds, onnx_dir)
        print(json.dumps(report["embedding"]), flush=True)
    if "int8" not in args.skip:
        report["int8"] = bench_int8_recall(texts[:args.recall_texts] if args.recall_texts else texts,
                                           onnx_dir=onnx_dir)
        print(json.dumps(report["int8"]), flush=True)
    if "coldstart" not in args.skip:
        report["coldstart"] = bench_cold_start()
        print(json.dumps(report["coldstart"]), flush=True)
    if "serve" not in args.skip:
        report["serve"] = bench_serve()
        print(json.dumps({"serve": report["serve"]}), flush=True)
    if "queries" not in args.skip:
        from tlcli.models.embedder import TextEmbedder

        real = TextEmbedder("all-MiniLM-L6-v2").encode(texts)
        vectors = corpus_vectors(real, args.n)
        rng = np.random.default_rng(1)
        picks = rng.choice(len(real), args.queries, replace=len(real) < args.queries)
        noisy = real[picks] + rng.normal(0, 0.03, (args.queries, real.shape[1]))
        queries = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
        rows = bench_queries(vectors, queries)
        for row in rows:
            row["bytes_per_chunk"] = round(row.pop("bytes") / len(vectors), 1)
            print(json.dumps(row), flush=True)
        report["queries"] = {"chunks": len(vectors), "real": len(real), "rows": rows}
    if "reindex" not in args.skip:
        report["reindex"] = bench_reindex(args.files)
        print(json.dumps(report["reindex"]), flush=True)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
