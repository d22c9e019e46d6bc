"""`tlcli rag ...`, declared: each command's options are a config in tlcli_rag/config.py, its work a job in
tlcli_rag/job.py.

`rag index` makes a run folder (INDEX/builds/rag-index-<time>: config.json, the build's `index` events, the summary)
besides the index folder it updates; it cannot be resumed: a re-run is incremental (only new or changed
files are embedded). The other commands make no run folder (kind "tool")."""

from tlcli.cli.command import Command
from tlcli_rag.config import AskConfig, EvalConfig, IndexConfig, InfoConfig, SearchConfig, ServeConfig

INDEX = Command(
    "index", IndexConfig, "tlcli_rag.job:index_job",
    """Index documents (.txt .md .rst .html .pdf .py .ipynb .json .jsonl); re-runs embed only what changed.

    The index folder (--index) holds FAISS vectors and a SQLite sidecar; each build is also a run folder
    (--out, default INDEX/builds/rag-index-<time>) whose events.jsonl records the build's progress. A re-run over the
    same paths is the way to continue: unchanged files are hashed, not embedded.""",
    plugin="rag", group="rag", run_name="rag-index", resumable=False, prepare="tlcli_rag.build:prepare_build",
    examples=("tlcli rag index docs/ notes/ --json",
              "find . -name '*.md' | tlcli rag index - --index ~/.my-index",
              "torchrun --nproc-per-node 2 -m tlcli rag index big-corpus/ --out runs/big-index"))

SEARCH = Command(
    "search", SearchConfig, "tlcli_rag.job:search_job",
    """Search the index: one line per hit with source, lines and heading.

    With --json, one record per hit (rank, score, id, source, start, end, lines, heading, text; "query" too
    when several queries are given), then the summary line.""",
    kind="tool", plugin="rag", group="rag",
    examples=("tlcli rag search 'what does E4021 mean' -k 5",
              "tlcli rag search 'install offline' --filter 'source=docs/*' --mode dense --json"))

ASK = Command(
    "ask", AskConfig, "tlcli_rag.job:ask_job",
    """Answer a question from retrieved passages with numbered citations (needs --llm).

    Without a language model (--llm, $TLCLI_LLM or tlcli.toml \\[llm]) it shows the passages it would give one.
    With --json, one record (question, answer, llm, scripted, citations, usage, passages), then the summary.""",
    kind="tool", plugin="rag", group="rag",
    examples=("tlcli rag ask 'How do I raise an exception?' --llm openai:http://127.0.0.1:8000/v1#m",))

EVAL = Command(
    "eval", EvalConfig, "tlcli_rag.job:eval_job",
    """recall@k, MRR@k and nDCG@k of dense, lexical and hybrid search on a qrels file.

    With --json, one record per mode, then the summary (its "metrics" hold MODE/MEASURE@k).""",
    kind="tool", plugin="rag", group="rag",
    examples=("tlcli rag eval --qrels questions.jsonl -k 10 --json",))

INFO = Command(
    "info", InfoConfig, "tlcli_rag.job:info_job",
    "What an index holds: files, chunks, model, dimension, index type, size.",
    kind="tool", plugin="rag", group="rag",
    examples=("tlcli rag info --index .tlcli-index --json",))

SERVE = Command(
    "serve", ServeConfig, "tlcli_rag.job:serve_job",
    """Serve the index over MCP (stdio) with `search` and `fetch_chunk` tools.

    stdout carries the protocol: the server prints nothing else there (no summary line).""",
    kind="tool", plugin="rag", group="rag",
    examples=("tlcli rag serve --index /path/to/.tlcli-index",))
