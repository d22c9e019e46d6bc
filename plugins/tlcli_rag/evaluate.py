"""`tlcli rag eval`: recall@k, MRR@k and nDCG@k of each search mode against a qrels file.

A qrels line is ``{"query": "...", "relevant": ["docs/a.md", "docs/b.md:10-20", ...]}``: a bare source
matches any chunk of that file; ``source:lines`` matches a chunk whose lines overlap the range. Each
relevant item is credited once, at the first hit that matches it (several chunks of one relevant file do
not inflate the scores).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from tlcli.console.errors import UsageError
from tlcli_rag.search import Hit


@dataclass(frozen=True)
class Relevant:
    source: str
    first: int | None = None
    last: int | None = None

    def matches(self, hit: Hit) -> bool:
        if hit.source != self.source:
            return False
        if self.first is None:
            return True
        return hit.line_start <= self.last and hit.line_end >= self.first


def parse_relevant(text: str) -> Relevant:
    match = re.match(r"^(.*):(\d+)(?:-(\d+))?$", text)
    if match:
        first = int(match.group(2))
        return Relevant(match.group(1), first, int(match.group(3) or first))
    return Relevant(text)


def read_qrels(path: Path) -> list[tuple[str, list[Relevant]]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"--qrels {path}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"--qrels {path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.removeprefix("\ufeff") if number == 1 else line)
            query, relevant = record["query"], record["relevant"]
            assert isinstance(query, str) and isinstance(relevant, list) and relevant
            assert all(isinstance(r, (str, int)) and not isinstance(r, bool) for r in relevant)
        except (ValueError, KeyError, TypeError, AssertionError, RecursionError):
            raise UsageError(f"--qrels {path}: line {number} is not "
                             '{"query": "...", "relevant": ["source" or "source:lines", ...]}') from None
        out.append((query, [parse_relevant(str(r)) for r in relevant]))
    if not out:
        raise UsageError(f"--qrels {path}: no queries in it")
    return out


def score_hits(hits: list[Hit], relevant: list[Relevant], k: int) -> dict[str, float]:
    """recall@k, mrr@k, ndcg@k (binary gains) and hit@k of one ranked list."""
    credited: set[int] = set()
    dcg, first_rank = 0.0, None
    for rank, hit in enumerate(hits[:k], start=1):
        for r_i, rel in enumerate(relevant):
            if r_i not in credited and rel.matches(hit):
                credited.add(r_i)
                dcg += 1.0 / math.log2(rank + 1)
                first_rank = first_rank or rank
                break
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(relevant), k) + 1))
    return {"recall": len(credited) / len(relevant), "mrr": 1.0 / first_rank if first_rank else 0.0,
            "ndcg": dcg / ideal if ideal else 0.0, "hit": 1.0 if credited else 0.0}


def evaluate(searcher, qrels: list[tuple[str, list[Relevant]]], k: int, modes: list[str]) -> list[dict]:
    """One row per mode: the mean of each measure over the queries."""
    queries = [q for q, _ in qrels]
    rows = []
    for mode in modes:
        results = searcher.search(queries, k=k, mode=mode)
        scores = [score_hits(hits, rel, k) for hits, (_, rel) in zip(results, qrels)]
        row = {"mode": mode, "k": k, "queries": len(qrels)}
        for measure in ("recall", "mrr", "ndcg", "hit"):
            row[f"{measure}@{k}"] = sum(s[measure] for s in scores) / len(scores)
        rows.append(row)
    return rows
