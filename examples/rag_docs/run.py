"""RAG over Python's own documentation topics, offline, through the CLI.

Writes each topic of ``pydoc_data.topics`` (shipped with Python) to a text file, indexes them with the
packaged all-MiniLM-L6-v2, re-indexes (nothing changed: hashing only), asks a few questions, and prints
``tlcli rag eval`` for dense vs lexical vs hybrid search on 50 questions with known topics
(questions.jsonl). Run from the repository root:

    .venv/bin/python examples/rag_docs/run.py [--all] [--keep DIR]

By default the three largest topics (compound, specialnames, types: ~150k characters that repeat the
smaller topics' text) are left out so the demo runs in about a minute on two cores; --all indexes all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LARGEST = {"compound", "specialnames", "types"}
ASK = ["How do I raise an exception from another exception?",
       "Which values count as false in an if statement?",
       "How do I format a float with two decimals?"]


def tlcli(*args: str, cwd: Path, json_lines: bool = True) -> list[dict] | str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TLCLI_HOME": str(cwd / ".home")}
    env.pop("TLCLI_LLM", None)
    command = [sys.executable, "-m", "tlcli", *args] + (["--json"] if json_lines else [])
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode != 0:
        sys.exit(f"tlcli {' '.join(args[:2])} failed (exit {done.returncode}):\n{done.stderr}")
    if not json_lines:
        return done.stdout
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="index every topic (slower)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    from pydoc_data.topics import topics

    # Absolute: the tlcli commands below run inside it, so a relative --keep would point elsewhere.
    work = (args.keep or Path(tempfile.mkdtemp(prefix="tlcli-rag-demo-"))).resolve()
    (work / "topics").mkdir(parents=True, exist_ok=True)
    chosen = {name: text for name, text in topics.items() if args.all or name not in LARGEST}
    for name, text in chosen.items():
        (work / "topics" / f"{name}.txt").write_text(text, encoding="utf-8")
    print(f"{len(chosen)} topics from pydoc_data.topics ({sum(map(len, chosen.values())) / 1e3:.0f}k characters) "
          f"in {work / 'topics'}")

    started = time.perf_counter()
    summary = tlcli("rag", "index", "topics", "--quiet", cwd=work)[-1]
    print(f"\nindexed: {summary['added']} files, {summary['chunks']} chunks, {summary['index_type']} index, "
          f"{summary['seconds']:.1f} s inside the command ({time.perf_counter() - started:.1f} s wall, "
          "model load included)")
    again = tlcli("rag", "index", "topics", "--quiet", cwd=work)[-1]
    print(f"re-indexed unchanged: {again['unchanged']} unchanged, {again['embedded']} embedded, "
          f"{again['seconds']:.2f} s")

    for question in ASK:
        hits = tlcli("rag", "search", question, "-k", "3", cwd=work)[:-1]  # the last line is the summary
        print(f"\n? {question}")
        for hit in hits:
            print(f"  {hit['rank']}. {hit['source']}:{hit['lines']}  [{hit['heading']}]  score {hit['score']:.4f}")

    print("\n`tlcli rag ask` without --llm prints the passages it would give a model:")
    print("\n".join(tlcli("rag", "ask", ASK[0], "-k", "2", cwd=work, json_lines=False).splitlines()[:6]))

    qrels = work / "questions.jsonl"
    kept = []
    for line in (HERE / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        record["relevant"] = [r for r in record["relevant"] if Path(r).stem in chosen]
        kept.append(json.dumps(record))
    qrels.write_text("\n".join(kept) + "\n", encoding="utf-8")
    rows = tlcli("rag", "eval", "--qrels", str(qrels), "-k", "3", cwd=work)[:-1]  # one per mode, then the summary
    print(f"\nrag eval on {rows[0]['queries']} questions with known topics (k=3):")
    print(f"  {'mode':<8} {'hit@3':>6} {'recall@3':>9} {'mrr@3':>6} {'ndcg@3':>7}")
    for row in rows:
        print(f"  {row['mode']:<8} {row['hit@3']:>6.2f} {row['recall@3']:>9.2f} {row['mrr@3']:>6.2f} "
              f"{row['ndcg@3']:>7.2f}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
