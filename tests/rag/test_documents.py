"""Loaders and chunking (no model: a whitespace tokenizer stands in; the real one is used elsewhere)."""

from __future__ import annotations

import json
import os

import pytest

from tlcli.data.documents import (DocumentError, WhitespaceTokenizer, chunk_documents, find_documents,
                                  load_document)


def load(path, **kw):
    return load_document(path, str(path), **kw)


def minimal_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF with ``lines`` of text (offsets computed, so pypdf reads it strictly)."""
    content = "BT /F1 12 Tf 20 120 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 144] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_markdown_heading_paths_and_code_fences(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text("# Guide\n\nIntro.\n\n## Install\n\nRun it.\n\n```\n# not a heading\n```\n\n### Offline\n\n"
                    "No network.\n\n## Use\n\nCall it.\n")
    document = load(path)
    headings = [s.heading for s in document.sections]
    assert headings == [("Guide",), ("Guide", "Install"), ("Guide", "Install", "Offline"), ("Guide", "Use")]
    install = document.sections[1]
    assert "# not a heading" in document.text[install.start:install.end]


def test_rst_and_plain_text_underlined_titles(tmp_path):
    path = tmp_path / "notes.rst"
    path.write_text("Title\n=====\n\nBody one.\n\nPart\n----\n\nBody two.\n\nOther\n=====\n\nBody three.\n")
    document = load(path)
    assert [s.heading for s in document.sections] == [("Title",), ("Title", "Part"), ("Other",)]


def test_html_gives_readable_text_not_markup(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>T</title><style>p {color: red}</style><script>var x = '<p>';</script>"
                    "</head><body><h1>Main &amp; only</h1><p>First <b>bold</b> para.</p><ul><li>one</li>"
                    "<li>two</li></ul><h2>Sub</h2><p>Second&nbsp;para.</p></body></html>")
    document = load(path)
    assert "<" not in document.text and "color" not in document.text and "var x" not in document.text
    assert "First bold para." in document.text and "Main & only" in document.text
    assert "one\ntwo" in document.text
    assert [s.heading for s in document.sections] == [("Main & only",), ("Main & only", "Sub")]


def test_pdf_text_by_page(tmp_path):
    path = tmp_path / "paper.pdf"
    path.write_bytes(minimal_pdf(["Retrieval augmented generation", "works offline"]))
    document = load(path)
    assert "Retrieval augmented generation" in document.text
    assert document.sections[0].heading == ("page 1",)


def test_broken_pdf_is_a_document_error(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nnot really a pdf")
    with pytest.raises(DocumentError):
        load(path)


def test_notebook_cells_and_json_text_field(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["# Analysis\n", "We load data."]},
        {"cell_type": "code", "source": "import numpy as np\nprint(np.pi)"},
    ]}))
    document = load(notebook)
    assert "We load data." in document.text and "print(np.pi)" in document.text
    assert document.sections[0].heading == ("Analysis",)

    records = tmp_path / "faq.jsonl"
    records.write_text('{"id": "q1", "body": "How to reset?"}\n{"id": "q2", "body": "Where are logs?"}\n')
    document = load(records, text_field="body")
    assert [s.heading for s in document.sections] == [("record q1",), ("record q2",)]
    with pytest.raises(DocumentError, match="--text-field"):
        load(records)  # no "text" field


def test_non_utf8_and_binary_are_refused(tmp_path):
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "bin.txt").write_bytes(b"abc\x00def")
    with pytest.raises(DocumentError, match="UTF-8"):
        load(tmp_path / "latin.txt")
    with pytest.raises(DocumentError, match="binary"):
        load(tmp_path / "bin.txt")


def test_chunks_respect_token_limit_offsets_lines_and_overlap(tmp_path):
    paragraphs = [" ".join(f"w{p}_{i}" for i in range(35)) + "." for p in range(12)]
    text = "Title\n=====\n\n" + "\n\n".join(paragraphs) + "\n"
    path = tmp_path / "long.txt"
    path.write_text(text)
    document = load(path)
    chunks = chunk_documents([document], WhitespaceTokenizer(), max_tokens=100, overlap=10)[0]
    assert len(chunks) >= 5
    for chunk in chunks:
        assert document.text[chunk.start:chunk.end] == chunk.text
        assert len(chunk.text.split()) <= 100
        assert chunk.heading == ("Title",)
        assert chunk.line_start == text.count("\n", 0, chunk.start) + 1
        assert chunk.line_end == text.count("\n", 0, chunk.end - 1) + 1
    # Breaks fall at paragraph ends (each chunk but the last ends with a whole paragraph's full stop)...
    assert all(c.text.endswith(".") for c in chunks)
    # ...and neighbours share up to `overlap` words.
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end
        assert len(text[b.start:a.end].split()) <= 10
    # Every word is in some chunk.
    covered = set(w for c in chunks for w in c.text.split())
    assert covered == set(text.split()) - {"Title", "====="} | ({"Title", "====="} & covered)


class PunctuationTokenizer(WhitespaceTokenizer):
    """Words, and each punctuation mark on its own, as BERT's tokenizer cuts them: a table rule is one
    "word" of many tokens."""

    def spans(self, texts):
        import re

        return [[m.span() for m in re.finditer(r"\w+|[^\w\s]", text)] for text in texts]


def test_a_long_word_of_many_tokens_does_not_multiply_the_chunks(tmp_path):
    # A text table's rule line (or a URL, or base64) is one word of hundreds of tokens: the window after it
    # starts at most `overlap` tokens back, never a token after the previous start (400 near-copies).
    text = "Some words before the table.\n\n+" + "-" * 400 + "+\n| a | b |\n\n" + "More words after it. " * 40
    path = tmp_path / "table.txt"
    path.write_text(text)
    tokenizer = PunctuationTokenizer()
    chunks = chunk_documents([load(path)], tokenizer, max_tokens=50, overlap=10)[0]
    tokens = len(tokenizer.spans([text])[0])
    assert len(chunks) <= tokens / (50 // 2 - 10) + 1
    for a, b in zip(chunks, chunks[1:]):
        assert b.start >= a.start and len(tokenizer.spans([text[b.start:a.end]])[0]) <= 10
    assert all(len(tokenizer.spans([c.text])[0]) <= 50 for c in chunks)
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(i in covered for i, char in enumerate(text) if not char.isspace())  # nothing dropped


def test_chunks_never_cross_sections(tmp_path):
    path = tmp_path / "two.md"
    path.write_text("# A\n\nalpha words here.\n\n# B\n\nbeta words here.\n")
    chunks = chunk_documents([load(path)], WhitespaceTokenizer(), max_tokens=50, overlap=5)[0]
    assert [(c.heading, c.text.splitlines()[-1]) for c in chunks] == [(("A",), "alpha words here."),
                                                                      (("B",), "beta words here.")]


def test_merged_sections_share_a_chunk_under_their_common_heading(tmp_path):
    path = tmp_path / "log.md"
    path.write_text("# Changes\n\n## 1.1\n\nfixed a.\n\n## 1.0\n\nadded b.\n\n## 0.9\n\n" + "word " * 60 + "\n")
    apart = chunk_documents([load(path)], WhitespaceTokenizer(), max_tokens=40, overlap=5)[0]
    merged = chunk_documents([load(path)], WhitespaceTokenizer(), max_tokens=40, overlap=5, merge_sections=True)[0]
    assert [c.heading for c in apart[:3]] == [("Changes",), ("Changes", "1.1"), ("Changes", "1.0")]
    # "# Changes", "## 1.1" and "## 1.0" fit in 40 words together; "## 0.9" (62 words) is windowed alone.
    assert merged[0].heading == ("Changes",) and merged[0].text.startswith("# Changes")
    assert merged[0].text.endswith("added b.") and "fixed a." in merged[0].text
    assert all(c.heading == ("Changes", "0.9") for c in merged[1:]) and len(merged) == len(apart) - 2
    assert all(len(c.text.split()) <= 40 for c in merged)


def test_walk_stays_inside_roots_caps_size_and_names_what_it_skips(tmp_path):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    (root / "image.png").write_bytes(b"x")  # not a document: ignored silently
    (root / ".hidden.md").write_text("h")
    (root / "big.txt").write_text("x" * 2000)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.txt").write_text("secret")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "key.txt", root / "escape.txt")
    os.symlink(root / "sub", root / "loop")  # inside the root: fine, visited once
    found, bad = find_documents([root], max_bytes=1000)
    sources = [os.path.relpath(f.path, root) for f in found]
    # b.txt once, by whichever spelling the sorted walk meets first ("loop" sorts before "sub").
    assert sorted(sources) == ["a.md", "loop/b.txt"]
    reasons = {os.path.basename(b.path): b.reason for b in bad}
    assert "outside" in reasons["escape"] and "outside" in reasons["escape.txt"]
    assert "cap" in reasons["big.txt"]
    assert "key.txt" not in reasons
