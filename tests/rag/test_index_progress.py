"""Index progress: `index` events with chunks/s and an ETA at least once a second while embedding, and
plain lines in a log never more than 5 s apart (a fake clock drives both)."""

from __future__ import annotations

import io

import numpy as np

from tlcli.data.documents import WhitespaceTokenizer
from tlcli_rag.build import IndexConfig, IndexProgress, ProgressPrinter, build_index, progress_line

KEYS = {"stage", "files_done", "files", "chunks_done", "chunks", "chunks_per_s", "eta_s"}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_events_are_throttled_to_one_a_second_with_rate_and_eta():
    clock, events = Clock(), []
    tracker = IndexProgress(events.append, files=10, chunks=1000, clock=clock)
    for done in range(10, 1001, 10):  # a batch of 10 chunks every 0.25 s: 40 chunks/s
        clock.now += 0.25
        tracker.update(done // 100, done)
    assert all(set(e) == KEYS for e in events)
    assert 20 <= len(events) <= 30 and events[-1]["chunks_done"] == 1000 and events[-1]["eta_s"] == 0
    middle = events[len(events) // 2]
    assert middle["chunks_per_s"] == 40.0
    assert abs(middle["eta_s"] - (1000 - middle["chunks_done"]) / 40) < 0.051  # rounded to 0.1 s


def test_a_log_gets_a_plain_line_at_most_every_five_seconds():
    clock, stream = Clock(), io.StringIO()
    printer = ProgressPrinter(stream, clock=clock, terminal=False)
    tracker = IndexProgress(printer, files=4, chunks=600, clock=clock)
    printer({"stage": "chunked", "files": 4, "chunks": 600})
    times = []
    for done in range(6, 601, 6):  # one batch every 1.5 s (a slow CPU)
        clock.now += 1.5
        before = stream.getvalue().count("\n")
        tracker.update(done // 150, done)
        if stream.getvalue().count("\n") > before:
            times.append(clock.now)
    gaps = np.diff([0.0] + times)
    assert max(gaps) <= 5.0 and len(times) <= 100 / 2  # regular, and not one line per batch
    last = stream.getvalue().splitlines()[-1]
    assert last == "embedded 600/600 chunks, 4/4 files (4.0 chunks/s, ETA 0:00)"


def test_a_terminal_gets_one_bar_redrawn_in_place():
    stream = io.StringIO()
    printer = ProgressPrinter(stream, terminal=True)
    printer({"stage": "embedding", "files_done": 1, "files": 2, "chunks_done": 50, "chunks": 100,
             "chunks_per_s": 25.0, "eta_s": 2.0})
    printer({"stage": "embedding", "files_done": 2, "files": 2, "chunks_done": 100, "chunks": 100,
             "chunks_per_s": 25.0, "eta_s": 0.0})
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "50/100 chunks 25.0/s ETA 0:02" in text


def test_progress_line_names_an_unknown_eta():
    assert "ETA ?" in progress_line({"stage": "embedding", "chunks_done": 0, "chunks": 5, "files_done": 0,
                                     "files": 1, "chunks_per_s": 0.0, "eta_s": None})


class FakeEmbedder:
    """Words as tokens and random vectors; reports progress every two texts like the real one per batch."""

    chunk_tokenizer = WhitespaceTokenizer()
    max_seq_length = 256
    dimension = 8

    def encode(self, texts, progress=None):
        for done in range(2, len(texts) + 2, 2):
            if progress is not None:
                progress(min(done, len(texts)))
        vectors = np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_build_reports_embedding_progress_with_the_documented_keys(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"{i}.txt").write_text(" ".join(f"word{j}" for j in range(400)), encoding="utf-8")
    events = []
    build_index(IndexConfig(paths=[str(docs)], index=str(tmp_path / ".idx"), chunk_tokens=64, overlap=8),
                events.append, make_embedder=lambda *args: FakeEmbedder())
    embedding = [e for e in events if e["stage"] == "embedding"]
    assert embedding and all(set(e) == KEYS for e in embedding)
    assert embedding[-1]["chunks_done"] == embedding[-1]["chunks"] > 0
    assert embedding[-1]["files_done"] == embedding[-1]["files"] == 5
