"""Index about 1 MB of installed packages' READMEs with `tlcli rag index`, against the library's encode.

    python benchmarks/rag_readmes.py [--bytes 1000000] [--rounds 1] [--json]

Each round, in turn:

1. `tlcli rag index CORPUS --index IDX --reembed` in a fresh process, its stderr a pipe (what a log or CI
   sees: plain progress lines, no bar). Every stderr line is time-stamped as it arrives; the report gives
   the wall time, the chunks and chunks/s of the build summary, and the longest gap between two lines
   while the model embeds (the promise: a line at least every 5 s).
2. ``SentenceTransformer.encode`` (batch_size 32, its default) in this process, over the very texts the
   index embedded (read back from the index: heading path + chunk text), timed alone, and the same for
   tlcli's ``TextEmbedder.encode`` (what the build spends in the model).

The machine, the corpus (distributions and versions) and the precision `--precision auto` picked are
printed first; figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def index_once(corpus: Path, index: Path) -> dict:
    """One `tlcli rag index` run; its summary, wall time and the time-stamped stderr lines."""
    command = [sys.executable, "-m", "tlcli", "rag", "index", str(corpus), "--index", str(index), "--json",
               "--reembed"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[tuple[float, str]] = []

    def read_stderr() -> None:
        for line in process.stderr:
            lines.append((time.monotonic() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read_stderr)
    reader.start()
    stdout = process.stdout.read()
    process.wait()
    reader.join()
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"rag index failed ({process.returncode}):\n" + "\n".join(l for _, l in lines[-20:]))
    summary = json.loads(stdout.strip().splitlines()[-1])
    embedding = [t for t, line in lines if line.startswith("embedded ")]
    chunked = next((t for t, line in lines if line.startswith("chunked ")), None)
    marks = ([chunked] if chunked is not None else []) + embedding
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    return {"wall_s": round(wall, 2), "chunks": summary["embedded"], "files": summary["added"],
            "chunks_per_s_wall": round(summary["embedded"] / wall, 1), "progress_lines": len(embedding),
            "max_gap_s": round(max(gaps), 2) if gaps else None, "first_line_s": round(lines[0][0], 2) if lines else None,
            "lines": [f"{t:7.2f}s  {line}" for t, line in lines]}


def indexed_texts(index: Path) -> list[str]:
    """What the build embedded: each chunk's heading path and text (tlcli_rag.build._embedding_text)."""
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    connection = sqlite3.connect(index / f"gen-{manifest['generation']:06d}.sqlite")
    try:
        rows = connection.execute("SELECT heading, text FROM chunks ORDER BY id").fetchall()
    finally:
        connection.close()
    return [f"{heading}\n{text}" if heading else text for heading, text in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--log", action="store_true", help="print the build's stderr lines with their times")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(HERE))
    from rag import machine
    from readmes import collect

    from tlcli.device import resolve
    from tlcli.models.embedder import TextEmbedder

    work = Path(tempfile.mkdtemp(prefix="tlcli-readmes-"))
    corpus = collect(work / "corpus", args.bytes)
    print(f"# {machine()}; --precision auto: {resolve('encode_texts', 'cpu').precision}")
    print(f"# corpus: {corpus['files']} READMEs, {corpus['bytes']:,} bytes", flush=True)
    index = work / "index"
    builds, library, tlcli = [], [], []
    texts: list[str] = []
    model = tlcli_embedder = None
    for _ in range(args.rounds):
        builds.append(index_once(work / "corpus", index))
        print(json.dumps({k: v for k, v in builds[-1].items() if k != "lines"}), flush=True)
        if not texts:
            texts = indexed_texts(index)
            tlcli_embedder = TextEmbedder("all-MiniLM-L6-v2")
            model = TextEmbedder("all-MiniLM-L6-v2", precision="fp32").sentence_transformer
            model.encode(texts[:32], show_progress_bar=False)  # warm-up, as the build's process warms up too
            tlcli_embedder.encode(texts[:32])
        started = time.perf_counter()
        model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        library.append(time.perf_counter() - started)
        started = time.perf_counter()
        tlcli_embedder.encode(texts)
        tlcli.append(time.perf_counter() - started)
        print(json.dumps({"library_encode_s": round(library[-1], 2), "tlcli_encode_s": round(tlcli[-1], 2)}), flush=True)
    wall = statistics.median(b["wall_s"] for b in builds)
    report = {"corpus": corpus, "chunks": len(texts), "rounds": args.rounds, "precision": tlcli_embedder.precision,
              "rag_index_wall_s": wall, "rag_index_chunks_per_s": round(len(texts) / wall, 1),
              "library_encode_s": round(statistics.median(library), 2),
              "library_chunks_per_s": round(len(texts) / statistics.median(library), 1),
              "tlcli_encode_s": round(statistics.median(tlcli), 2),
              "tlcli_chunks_per_s": round(len(texts) / statistics.median(tlcli), 1),
              "library_over_rag_index": round(statistics.median(library) / wall, 2),
              "library_over_tlcli_encode": round(statistics.median(l / t for l, t in zip(library, tlcli)), 2),
              "max_progress_gap_s": max(b["max_gap_s"] or 0 for b in builds),
              "progress_lines": [b["progress_lines"] for b in builds]}
    print(f"rag index (fresh process, wall)  {wall:8.1f} s  {report['rag_index_chunks_per_s']:7.1f} chunks/s")
    print(f"tlcli encode alone               {report['tlcli_encode_s']:8.1f} s  {report['tlcli_chunks_per_s']:7.1f} chunks/s")
    print(f"SentenceTransformer.encode fp32  {report['library_encode_s']:8.1f} s  {report['library_chunks_per_s']:7.1f} chunks/s")
    print(f"library / rag index wall: {report['library_over_rag_index']:.2f}x; library / tlcli encode: "
          f"{report['library_over_tlcli_encode']:.2f}x; longest gap between progress lines: "
          f"{report['max_progress_gap_s']} s")
    if args.log:
        print("\n".join(builds[-1]["lines"]))
    if args.json:
        print(json.dumps(report))
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
