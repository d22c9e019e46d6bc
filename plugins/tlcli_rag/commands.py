"""`tlcli rag ...`: parse and validate options, then call the library modules.

Nothing heavy is imported at module level: this module is imported whenever the CLI starts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from tlcli.cli import options
from tlcli.errors import UsageError

DEFAULT_INDEX = Path(".tlcli-index")

RAG_HELP = """Retrieval over your documents: a FAISS index with a SQLite sidecar (no pickle), hybrid search, cited answers.

Examples:

  tlcli rag index docs/ notes.md              # incremental: only new or changed files are embedded

  tlcli rag search "how do I rotate the logs" -k 5 --filter 'source=docs/*'

  tlcli rag ask "What does --max-bad do?" --llm openai:http://127.0.0.1:8000/v1#my-model

  tlcli rag eval --qrels questions.jsonl      # recall@k, MRR, nDCG for dense, lexical and hybrid

  tlcli rag serve                             # an MCP server (stdio) with search and fetch_chunk tools
"""


def index_option() -> Path:
    return typer.Option(DEFAULT_INDEX, "--index", help="The index folder (default .tlcli-index in the current folder).")


def model_option(help: str) -> Optional[str]:
    return typer.Option(None, "--model", "-m", help=help)


def filter_option() -> Optional[List[str]]:
    return typer.Option(None, "--filter", help="source=GLOB, heading=GLOB (or !=), mtime>DATE (> >= < <=); "
                        "repeatable, all must hold. Applied before the vector search.")


def mode_option() -> str:
    return typer.Option("hybrid", "--mode", help="dense | lexical | hybrid (reciprocal rank fusion of both).")


def register(app: typer.Typer) -> None:
    commands = [
        ("index", index, "Index documents (.txt .md .rst .html .pdf .py .ipynb .json .jsonl); re-runs embed only "
         "what changed.\n\nExamples:\n\n  tlcli rag index docs/ notes/ --json\n\n"
         "  find . -name '*.md' | tlcli rag index - --index ~/.my-index\n\n"
         "  torchrun --nproc-per-node 2 -m tlcli rag index big-corpus/"),
        ("search", search, "Search the index: one line per hit with source, lines and heading.\n\nExamples:\n\n"
         "  tlcli rag search 'what does E4021 mean' -k 5\n\n"
         "  tlcli rag search 'install offline' --filter 'source=docs/*' --mode dense --json"),
        ("ask", ask, "Answer a question from retrieved passages with numbered citations (needs --llm).\n\n"
         "Example:\n\n  tlcli rag ask 'How do I raise an exception?' --llm openai:http://127.0.0.1:8000/v1#m"),
        ("eval", evaluate, "recall@k, MRR@k and nDCG@k of dense, lexical and hybrid search on a qrels file.\n\n"
         "Example:\n\n  tlcli rag eval --qrels questions.jsonl -k 10 --json"),
        ("info", info, "What an index holds: files, chunks, model, dimension, index type, size.\n\n"
         "Example:\n\n  tlcli rag info --index .tlcli-index --json"),
        ("serve", serve, "Serve the index over MCP (stdio) with `search` and `fetch_chunk` tools.\n\n"
         "Example (an MCP client's server command):\n\n  tlcli rag serve --index /path/to/.tlcli-index"),
    ]
    rag = typer.Typer(help=RAG_HELP, no_args_is_help=True)
    for name, function, text in commands:
        rag.command(name, help=text)(function)
    app.add_typer(rag, name="rag")


# --- index ---------------------------------------------------------------------------------------

def index(
    paths: List[str] = typer.Argument(..., help="Files and folders; '-' reads paths from stdin, one per line."),
    index: Path = index_option(),
    model: Optional[str] = model_option("sentence-transformers name or folder (default: the index's own model; "
                                        "all-MiniLM-L6-v2, offline, for a new index)."),
    index_type: str = typer.Option("auto", "--index-type", help="auto (flat up to 50k chunks, else hnsw) | flat | "
                                   "hnsw | ivf-pq."),
    chunk_tokens: int = typer.Option(200, "--chunk-tokens", min=16, help="Longest chunk, in the model's tokens."),
    overlap: int = typer.Option(30, "--overlap", min=0, help="Tokens repeated between neighbouring chunks."),
    text_field: str = typer.Option("text", "--text-field", help="The field holding the text in .json/.jsonl records."),
    reembed: bool = typer.Option(False, "--reembed", help="Rebuild the whole index (another model, chunk size or type)."),
    max_file_mb: float = typer.Option(20.0, "--max-file-mb", min=0.001, help="Skip (and name) larger files."),
    max_bad: str = options.max_bad(),
    batch_size: Optional[int] = options.batch_size(None, "Texts per embedding batch (default on a CPU 16 in fp32, 32 in bf16; 64 on a GPU; short texts go "
                                                   "in bigger batches)."),
    device: str = options.device(),
    precision: str = options.precision(),
    out: Optional[Path] = options.out(),
    overwrite: bool = options.overwrite(),
    json_output: bool = options.json_(),
    quiet: bool = options.quiet(),
) -> None:
    from tlcli.data.bad_files import parse_max_bad
    from tlcli.output import emit_json, info as say
    from tlcli_rag import shards
    from tlcli_rag.build import IndexConfig

    sharded = shards.world_size() > 1
    if sharded and shards.rank() != 0:  # torchrun: the other ranks only embed their share of each batch
        shards.serve()
        return
    try:
        paths = _paths_from_stdin(paths)
        config = options.validated(
            IndexConfig, paths=paths, index=str(index), model=model, index_type=index_type,
            chunk_tokens=chunk_tokens, overlap=overlap, text_field=text_field, reembed=reembed,
            max_bad=parse_max_bad(max_bad), max_file_mb=max_file_mb, batch_size=batch_size, device=device,
            precision=precision)
        if index_type not in ("auto", "flat", "hnsw", "ivf-pq"):
            raise UsageError(f"--index-type {index_type}: expected auto, flat, hnsw or ivf-pq")
        if overlap >= chunk_tokens // 2:
            raise UsageError(f"--overlap {overlap}: must be under half of --chunk-tokens ({chunk_tokens})")
        options.check_out_path(out)
        record, summary = _index_as_run(config, out, overwrite, quiet, index,
                                        shards.make_sharded_embedder if sharded else None)
    finally:
        if sharded:  # however rank 0 ended, the other ranks must stop waiting for texts
            shards.finish()
    if json_output:
        emit_json(record)
    else:
        say(f"{index}: {summary.added} added, {summary.updated} updated, {summary.removed} removed, "
            f"{summary.unchanged} unchanged; {summary.chunks} chunks ({summary.embedded} embedded, "
            f"{summary.index_type}) in {summary.seconds:.1f} s")


def _index_as_run(config, out, overwrite: bool, quiet: bool, index: Path, make_embedder):
    from tlcli.run import Run
    from tlcli_rag.build import ProgressPrinter, build_index

    with Run.create("rag-index", out, overwrite=overwrite, plugin="rag", config=config.model_dump()) as run:
        run.start({"index": str(index)})

        printer = ProgressPrinter()

        def progress(event: dict) -> None:
            run.emit("index", event)
            if not quiet:
                printer(event)

        summary = build_index(config, progress, make_embedder)
        record = {**summary.record(), "index": str(index), "run": str(run.path)}
        run.finish("finished", metrics={k: v for k, v in record.items() if k != "skipped"})
    return record, summary


def _paths_from_stdin(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if path == "-":
            out += [line.rstrip("\n") for line in sys.stdin if line.strip()]
        else:
            out.append(path)
    if not out:
        raise UsageError("no paths given: pass files or folders, or '-' with paths on stdin")
    return out


# --- search --------------------------------------------------------------------------------------

def search(
    queries: List[str] = typer.Argument(..., help="The query; '-' reads one query per line from stdin (one batch)."),
    index: Path = index_option(),
    k: int = typer.Option(5, "--top-k", "-k", min=1, max=1000, help="Hits per query."),
    filters: Optional[List[str]] = filter_option(),
    mode: str = mode_option(),
    model: Optional[str] = model_option("Refused unless it is the index's own model (kept for scripts that "
                                        "pass it)."),
    device: str = options.device(),
    precision: str = options.precision(),
    json_output: bool = options.json_(),
) -> None:
    from tlcli.output import emit_json, print_table
    from tlcli_rag.search import MODES, Searcher, parse_filter

    texts = _queries(queries)
    if mode not in MODES:
        raise UsageError(f"--mode {mode}: expected one of {', '.join(MODES)}")
    parsed = [parse_filter(f) for f in filters or []]
    searcher = Searcher(index, model=model, device=device, precision=precision)
    results = searcher.search(texts, k=k, mode=mode, filters=parsed)
    if json_output:
        for query, hits in zip(texts, results):
            for hit in hits:
                record = hit.record()
                if len(texts) > 1:
                    record = {"query": query, **record}
                emit_json(record)
        return
    rows = []
    for query, hits in zip(texts, results):
        for hit in hits:
            row = [hit.rank, f"{hit.score:.4f}", hit.citation, hit.heading, _snippet(hit.text)]
            rows.append([query, *row] if len(texts) > 1 else row)
    columns = ["rank", "score", "source:lines", "heading", "text"]
    print_table(None, ["query", *columns] if len(texts) > 1 else columns, rows)


def _queries(queries: list[str]) -> list[str]:
    out: list[str] = []
    for query in queries:
        if query == "-":
            out += [line.strip() for line in sys.stdin if line.strip()]
        elif query.strip():
            out.append(query)
    if not out:
        raise UsageError("no query given: pass a query, or '-' with one query per line on stdin")
    return out


def _snippet(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


# --- ask -----------------------------------------------------------------------------------------

def ask(
    question: str = typer.Argument(..., help="The question."),
    index: Path = index_option(),
    llm: Optional[str] = options.llm(),
    template: Optional[Path] = typer.Option(None, "--template", help="A text file with {passages} and {question} "
                                            "for the user message (the system prompt stays)."),
    cot: bool = typer.Option(False, "--cot", help="Ask the model to reason about the passages before answering."),
    k: int = typer.Option(5, "--top-k", "-k", min=1, max=50, help="Passages given to the model."),
    filters: Optional[List[str]] = filter_option(),
    mode: str = mode_option(),
    temperature: Optional[float] = options.temperature(),
    max_tokens: Optional[int] = options.max_tokens(),
    device: str = options.device(),
    precision: str = options.precision(),
    json_output: bool = options.json_(),
) -> None:
    from tlcli.llm import find_spec, resolve_llm
    from tlcli.output import emit_json, info as say
    from tlcli_rag.ask import build_messages, citations
    from tlcli_rag.search import Searcher, parse_filter

    template_text = None
    if template is not None:
        try:
            template_text = template.read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"--template {template}: cannot read ({error.strerror})") from None
        if "{passages}" not in template_text or "{question}" not in template_text:
            raise UsageError(f"--template {template}: must contain {{passages}} and {{question}}")
    parsed = [parse_filter(f) for f in filters or []]
    spec = None
    try:
        spec = find_spec(llm)
    except UsageError:
        if llm:  # a bad --llm is an error; no LLM configured at all means "show the passages"
            raise
    searcher = Searcher(index, device=device, precision=precision)
    hits = searcher.search([question], k=k, mode=mode, filters=parsed)[0]
    passages = [hit.record() for hit in hits]
    if spec is None:
        say("no generator given (--llm, $TLCLI_LLM or tlcli.toml [llm]): showing the retrieved passages only")
        if json_output:
            emit_json({"question": question, "answer": None, "llm": None, "citations": [], "passages": passages})
        else:
            for n, hit in enumerate(hits, start=1):
                print(f"[{n}] {hit.citation}" + (f"  ({hit.heading})" if hit.heading else ""))
                print(hit.text.strip() + "\n")
        return
    model = resolve_llm(spec)
    if getattr(model, "scripted", False):
        say("the answer comes from a scripted LLM (canned replies), not a model")
    messages = build_messages(question, hits, template_text, cot)
    temperature = 0.0 if temperature is None else temperature
    max_tokens = max_tokens or 512
    usage = None
    if sys.stdout.isatty() and not json_output:
        pieces = []
        for piece in model.chat_stream(messages, temperature=temperature, max_tokens=max_tokens):
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        text = "".join(pieces)
        print()
    else:
        result = model.chat(messages, n=1, temperature=temperature, max_tokens=max_tokens)
        text, usage = result.text, result.usage
    cited = citations(text, hits)
    if json_output:
        emit_json({"question": question, "answer": text, "llm": getattr(model, "spec", str(llm)),
                   "scripted": bool(getattr(model, "scripted", False)), "citations": cited,
                   "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                   if usage is not None else None, "passages": passages})
        return
    if not sys.stdout.isatty():
        print(text)
    if cited:
        print()
        for c in cited:
            print(f"[{c['n']}] {c['source']}:{c['lines']}" if c["source"] else f"[{c['n']}] (no such passage)")


# --- eval ----------------------------------------------------------------------------------------

def evaluate(
    qrels: Path = typer.Option(..., "--qrels", help='JSON Lines: {"query": "...", "relevant": ["source" or '
                               '"source:lines", ...]}.'),
    index: Path = index_option(),
    k: int = typer.Option(10, "--top-k", "-k", min=1, max=1000, help="Cut-off for recall, MRR and nDCG."),
    modes: Optional[List[str]] = typer.Option(None, "--mode", help="Modes to compare (repeatable; default all three)."),
    device: str = options.device(),
    precision: str = options.precision(),
    json_output: bool = options.json_(),
) -> None:
    from tlcli.output import emit_json, print_table
    from tlcli_rag.evaluate import evaluate as run_eval, read_qrels
    from tlcli_rag.search import MODES, Searcher

    chosen = list(modes) if modes else list(MODES)
    for mode in chosen:
        if mode not in MODES:
            raise UsageError(f"--mode {mode}: expected one of {', '.join(MODES)}")
    pairs = read_qrels(qrels)
    searcher = Searcher(index, device=device, precision=precision)
    rows = run_eval(searcher, pairs, k, chosen)
    if json_output:
        for row in rows:
            emit_json(row)
        return
    measures = [f"recall@{k}", f"mrr@{k}", f"ndcg@{k}", f"hit@{k}"]
    print_table(f"{len(pairs)} queries", ["mode", *measures], [[r["mode"], *[r[m] for m in measures]] for r in rows])


# --- info ----------------------------------------------------------------------------------------

def info(index: Path = index_option(), json_output: bool = options.json_()) -> None:
    from tlcli.output import emit_json, print_table
    from tlcli_rag.search import IndexReader
    from tlcli_rag.store import folder_bytes

    reader = IndexReader(index)
    files, chunks = reader.counts()
    manifest = reader.manifest
    record = {"index": str(index), "files": files, "chunks": chunks, "model": manifest.model,
              "dimension": manifest.dimension, "normalized": manifest.normalized, "metric": manifest.metric,
              "index_type": manifest.index_type, "chunk_tokens": manifest.chunk_tokens, "overlap": manifest.overlap,
              "generation": manifest.generation, "bytes": folder_bytes(index)}
    if json_output:
        emit_json(record)
        return
    print_table(None, ["field", "value"], [[key, value] for key, value in record.items()])


# --- serve ---------------------------------------------------------------------------------------

def serve(index: Path = index_option(), device: str = options.device(), precision: str = options.precision()) -> None:
    from tlcli_rag.mcp_server import serve as run_server
    from tlcli_rag.store import require_manifest

    require_manifest(index)
    run_server(index, device, precision)
