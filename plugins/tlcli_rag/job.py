"""The jobs of `tlcli rag ...`: each takes its config and the Report, calls the library modules (build,
search, ask, evaluate, store) and returns its summary. Retrieved passages, headings, file names and a
model's answer are shown through the Report (escaped on a terminal; data with --json)."""

from __future__ import annotations

import sys
from pathlib import Path

from tlcli.console.errors import UsageError
from tlcli_rag import shards
from tlcli_rag.config import AskConfig, EvalConfig, IndexConfig, InfoConfig, SearchConfig, ServeConfig
from tlcli_rag.search import Searcher, parse_filter



# --- index ------------------------------------------------------------------------------------------------

def index_job(cfg: IndexConfig, run, report) -> dict:
    """`tlcli rag index`: bring the index up to date (only new or changed files are embedded); the build's
    progress goes to the run's events.jsonl (``index`` events) and, every few seconds, to stderr."""
    from tlcli_rag.build import build_index

    sharded = shards.world_size() > 1
    if sharded and shards.rank() != 0:  # torchrun: the other ranks only embed their share of each batch
        shards.serve()
        return {"status": "finished"}
    try:
        cfg = cfg.model_copy(update={"paths": paths_from_stdin(cfg.paths)})
        run.write_config(cfg.model_dump(mode="json"))  # the paths read from stdin, so --config re-runs it
        run.start({"index": cfg.index})
        summary = build_index(cfg, _progress(run, report), shards.make_sharded_embedder if sharded else None)
    finally:
        if sharded:  # however rank 0 ended, the other ranks must stop waiting for texts
            shards.finish()
    return {**summary.record(), "index": cfg.index}


def _progress(run, report):
    """Each build event into the run's events.jsonl (the dashboard's index panel reads them) and, for
    people, a bar on a terminal or a line every few seconds in a log (off with --quiet)."""
    from tlcli_rag.build import ProgressPrinter

    printer = None if report.progress_quiet or report.silent else ProgressPrinter()

    def progress(event: dict) -> None:
        run.emit("index", event)
        if printer is not None:
            printer(event)

    return progress


def paths_from_stdin(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        if path == "-":
            out += [line.rstrip("\n") for line in sys.stdin if line.strip()]
        else:
            out.append(path)
    if not out:
        raise UsageError("no paths given: pass files or folders, or '-' with paths on stdin")
    return out


# --- search -----------------------------------------------------------------------------------------------

def search_job(cfg: SearchConfig, run, report) -> dict:
    """`tlcli rag search`: one record per hit (with its query when there are several)."""
    texts = queries_from_stdin(cfg.queries)
    searcher = Searcher(Path(cfg.index), model=cfg.model, device=cfg.device, precision=cfg.precision)
    results = searcher.search(texts, k=cfg.top_k, mode=cfg.mode, filters=[parse_filter(f) for f in cfg.filters or []])
    several = len(texts) > 1
    rows = []
    for query, hits in zip(texts, results):
        for hit in hits:
            report.record({"query": query, **hit.record()} if several else hit.record())
            row = [hit.rank, f"{hit.score:.4f}", hit.citation, hit.heading, snippet(hit.text)]
            rows.append([query, *row] if several else row)
    columns = ["rank", "score", "source:lines", "heading", "text"]
    report.table(None, ["query", *columns] if several else columns, rows)
    return {"queries": len(texts), "hits": sum(len(hits) for hits in results), "mode": cfg.mode, "index": cfg.index}


def queries_from_stdin(queries: list[str]) -> list[str]:
    out: list[str] = []
    for query in queries:
        if query == "-":
            out += [line.strip() for line in sys.stdin if line.strip()]
        elif query.strip():
            out.append(query)
    if not out:
        raise UsageError("no query given: pass a query, or '-' with one query per line on stdin")
    return out


def snippet(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


# --- ask --------------------------------------------------------------------------------------------------

def ask_job(cfg: AskConfig, run, report) -> dict:
    """`tlcli rag ask`: the passages, then the model's answer with its citations (streamed on a terminal).
    Without a configured LLM it shows the passages it would have given one."""
    import tlcli.llm as llms
    from tlcli_rag.ask import build_messages, citations

    template = read_template(cfg.template)
    spec = None
    try:
        spec = llms.find_spec(cfg.llm)
    except UsageError:
        if cfg.llm:  # a bad --llm is an error; no LLM configured at all means "show the passages"
            raise
    searcher = Searcher(Path(cfg.index), device=cfg.device, precision=cfg.precision)
    hits = searcher.search([cfg.question], k=cfg.top_k, mode=cfg.mode,
                           filters=[parse_filter(f) for f in cfg.filters or []])[0]
    passages = [hit.record() for hit in hits]
    if spec is None:
        report.info("no generator given (--llm, $TLCLI_LLM or tlcli.toml \\[llm]): showing the retrieved passages only")
        report.record({"question": cfg.question, "answer": None, "llm": None, "citations": [], "passages": passages})
        for n, hit in enumerate(hits, start=1):
            report.text(f"[{n}] {hit.citation}" + (f"  ({hit.heading})" if hit.heading else ""))
            report.text(hit.text.strip() + "\n\n")  # a blank line between passages
        return {"llm": None, "passages": len(hits), "citations": 0, "index": cfg.index}
    model = llms.resolve_llm(spec)
    scripted = bool(getattr(model, "scripted", False))
    if scripted:
        report.info("the answer comes from a scripted LLM (canned replies), not a model")
    messages = build_messages(cfg.question, hits, template, cfg.cot)
    temperature = 0.0 if cfg.temperature is None else cfg.temperature
    max_tokens = cfg.max_tokens or 512
    usage = None
    if report.for_people:  # the answer as it is produced
        text = report.stream(model.chat_stream(messages, temperature=temperature, max_tokens=max_tokens))
    else:  # data: the whole reply with its usage
        result = model.chat(messages, n=1, temperature=temperature, max_tokens=max_tokens)
        text, usage = result.text, result.usage
    cited = citations(text, hits)
    llm_name = getattr(model, "spec", str(cfg.llm))
    report.record({"question": cfg.question, "answer": text, "llm": llm_name, "scripted": scripted,
                   "citations": cited, "usage": {"prompt_tokens": usage.prompt_tokens,
                                                 "completion_tokens": usage.completion_tokens}
                   if usage is not None else None, "passages": passages})
    if cited:
        report.text("\n" + "\n".join(f"[{c['n']}] {c['source']}:{c['lines']}" if c["source"]
                                     else f"[{c['n']}] (no such passage)" for c in cited))
    return {"llm": llm_name, "scripted": scripted, "passages": len(hits), "citations": len(cited),
            "index": cfg.index}


def read_template(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"--template {path}: cannot read ({error.strerror})") from None
    if "{passages}" not in text or "{question}" not in text:
        raise UsageError(f"--template {path}: must contain {{passages}} and {{question}}")
    return text


# --- eval -------------------------------------------------------------------------------------------------

def eval_job(cfg: EvalConfig, run, report) -> dict:
    """`tlcli rag eval`: one record per search mode; the summary holds each mode's measures."""
    from tlcli_rag.evaluate import evaluate, read_qrels
    from tlcli_rag.search import MODES

    modes = list(cfg.modes or MODES)
    pairs = read_qrels(Path(cfg.qrels))
    searcher = Searcher(Path(cfg.index), device=cfg.device, precision=cfg.precision)
    rows = evaluate(searcher, pairs, cfg.top_k, modes)
    measures = [f"{m}@{cfg.top_k}" for m in ("recall", "mrr", "ndcg", "hit")]
    for row in rows:
        report.record(row)
    report.table(f"{len(pairs)} queries", ["mode", *measures], [[r["mode"], *[r[m] for m in measures]] for r in rows])
    return {"queries": len(pairs), "k": cfg.top_k, "modes": modes,
            "metrics": {f"{r['mode']}/{m}": r[m] for r in rows for m in measures}, "index": cfg.index}


# --- info -------------------------------------------------------------------------------------------------

def info_job(cfg: InfoConfig, run, report) -> dict:
    """`tlcli rag info`: what the index holds; the summary is the record."""
    from tlcli_rag.search import IndexReader
    from tlcli_rag.store import folder_bytes

    reader = IndexReader(Path(cfg.index))
    reader.verify()
    files, chunks = reader.counts()
    manifest = reader.manifest
    record = {"index": cfg.index, "files": files, "chunks": chunks, "model": manifest.model,
              "dimension": manifest.dimension, "normalized": manifest.normalized, "metric": manifest.metric,
              "index_type": manifest.index_type, "chunk_tokens": manifest.chunk_tokens, "overlap": manifest.overlap,
              "generation": manifest.generation, "bytes": folder_bytes(Path(cfg.index))}
    report.table(None, ["field", "value"], [[key, value] for key, value in record.items()])
    return record


# --- serve ------------------------------------------------------------------------------------------------

def serve_job(cfg: ServeConfig, run, report) -> dict:
    """`tlcli rag serve`: the MCP server over stdio until the client closes it."""
    from tlcli_rag.mcp_server import serve
    from tlcli_rag.store import require_manifest

    require_manifest(Path(cfg.index))
    report.silent = True  # stdout carries the MCP protocol: nothing else may be written there, no summary either
    serve(Path(cfg.index), cfg.device, cfg.precision)
    return {"index": cfg.index}
