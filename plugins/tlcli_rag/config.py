"""The options of `tlcli rag ...`: the one declaration of each command's flags (see tlcli/fields.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from tlcli.data.documents import DEFAULT_MAX_FILE_BYTES
from tlcli.fields import PANEL_PLACEMENT, LLMOptions, MaxBadShare, Options, Placement, option

DEFAULT_INDEX = ".tlcli-index"
# A new index's chunking, chosen by benchmarks/rag_quality.py (docs/rag-benchmarks.md); an existing index
# keeps its own unless --chunk-tokens/--overlap and --reembed say otherwise.
DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP = 15
MODES = ("dense", "lexical", "hybrid")
Mode = Literal["dense", "lexical", "hybrid"]
FILTER_HELP = ("source=GLOB, heading=GLOB (or !=), mtime>DATE (> >= < <=); repeatable, all must hold. Applied "
               "before the vector search.")


class IndexFolder(Options):
    index: str = option(DEFAULT_INDEX, "The index folder (default .tlcli-index in the current folder).")


class OnIndex(IndexFolder):
    """An index folder and where its text encoder runs (the encoder takes no --workers)."""

    device: Literal["auto", "cpu", "cuda", "mps"] = Placement.model_fields["device"]
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = option(
        "auto", "auto | fp32 | bf16 | fp16 | int8 (auto: bf16 on a GPU or where this CPU measured it faster, see "
        "`tlcli doctor`; int8: int8 linears with per-token activations on a CPU, about 0.9995 cosine to fp32).",
        panel=PANEL_PLACEMENT)


class IndexConfig(OnIndex):
    """`tlcli rag index`; also what :func:`tlcli_rag.build.build_index` takes."""

    paths: list[str] = option(..., "Files and folders; '-' reads paths from stdin, one per line.", argument=True,
                              metavar="PATHS...", min_length=1,
                              missing="pass files or folders, or '-' with paths on stdin")
    model: str | None = option(None, "sentence-transformers name or folder (default: the index's own model; "
                               "all-MiniLM-L6-v2, offline, for a new index).", short="-m")
    index_type: Literal["auto", "flat", "hnsw", "ivf-pq"] = option(
        "auto", "auto (flat up to 50k chunks, else hnsw) | flat | hnsw | ivf-pq.")
    chunk_tokens: int | None = option(None, f"Longest chunk, in the model's tokens (default: the index's own; "
                                      f"{DEFAULT_CHUNK_TOKENS} for a new index).", ge=16, le=8192)
    overlap: int | None = option(None, f"Most tokens repeated between neighbouring chunks (default: the index's "
                                 f"own; {DEFAULT_OVERLAP} for a new index).", ge=0)
    text_field: str = option("text", "The field holding the text in .json/.jsonl records.")
    reembed: bool = option(False, "Rebuild the whole index (another model, chunk size or type).")
    max_file_mb: float = option(DEFAULT_MAX_FILE_BYTES / 1e6, "Skip (and name) larger files.", gt=0)
    max_bad: MaxBadShare = option(0.05, "Exit 2 when more input files than this are unreadable: a share (5%, "
                                  "0.05).")
    batch_size: int | None = option(None, "Texts per embedding batch (default on a CPU 16 in fp32, 32 in bf16; 64 "
                                    "on a GPU; short texts go in bigger batches).", short="-b", ge=1, resume=True)

    @model_validator(mode="after")
    def _overlap_under_half_a_chunk(self):
        # With one of the two left to the index, the check waits for the index (tlcli_rag.build.chunking).
        if self.overlap is not None and self.chunk_tokens is not None and self.overlap >= self.chunk_tokens // 2:
            raise ValueError(f"--overlap {self.overlap} must be under half of --chunk-tokens ({self.chunk_tokens})")
        return self


class Searching(OnIndex):
    filters: list[str] | None = option(None, FILTER_HELP, flag="--filter", repeat=True)
    mode: Mode = option("hybrid", "dense | lexical | hybrid (reciprocal rank fusion of both).")

    @field_validator("filters")
    @classmethod
    def _filters_parse(cls, values):
        from tlcli_rag.search import parse_filter

        for value in values or []:
            parse_filter(value)  # a UsageError naming --filter, before the index is opened
        return values


class SearchConfig(Searching):
    queries: list[str] = option(..., "The query; '-' reads one query per line from stdin (one batch).",
                                argument=True, metavar="QUERY...", min_length=1,
                                missing="pass a query, or '-' with one query per line on stdin")
    top_k: int = option(5, "Hits per query.", short="-k", ge=1, le=1000)
    model: str | None = option(None, "Refused unless it is the index's own model (kept for scripts that pass it).",
                               short="-m")


class AskConfig(Searching, LLMOptions):
    question: str = option(..., "The question.", argument=True, metavar="QUESTION", missing="pass a question")
    template: str | None = option(None, "A text file with {passages} and {question} for the user message (the "
                                  "system prompt stays).")
    cot: bool = option(False, "Ask the model to reason about the passages before answering.")
    top_k: int = option(5, "Passages given to the model.", short="-k", ge=1, le=50)


class EvalConfig(OnIndex):
    qrels: str = option(..., 'JSON Lines: {"query": "...", "relevant": ["source" or "source:lines", ...]}.',
                        missing="pass --qrels FILE.jsonl")
    top_k: int = option(10, "Cut-off for recall, MRR and nDCG.", short="-k", ge=1, le=1000)
    modes: list[Mode] | None = option(None, "Modes to compare: dense, lexical, hybrid (repeatable or "
                                      "comma-separated; default all three).", flag="--mode", repeat=True)

    @field_validator("modes", mode="before")
    @classmethod
    def _comma_separated(cls, values):
        if values is None:
            return None
        values = [values] if isinstance(values, str) else values
        return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


class InfoConfig(IndexFolder):
    pass


class ServeConfig(OnIndex):
    pass
