"""Documents for retrieval: find files under roots, read them as text, cut them into token-sized chunks.

Loaders turn a file into a :class:`Document`: readable text plus *sections* (character spans with a
heading path). Chunking packs each section into windows of at most ``max_tokens`` tokens of the
embedder's own tokenizer, preferring to end at a paragraph break, then a sentence end, then a word, with
``overlap`` tokens repeated between neighbours. A chunk never spans two sections, so its heading path is
exact. Every chunk keeps its source, character offsets and line numbers in the document's text (the
file's own text for .txt/.md/.rst/.py; the extracted text for .html/.pdf/.ipynb/.json).

Nothing here imports torch; pypdf is imported only for a PDF.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable, Sequence

from tlcli.data.common import BadImage as BadFile  # the same (path, reason) record serves any file kind
from tlcli.console.output import display_path

DOCUMENT_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".py", ".ipynb", ".json", ".jsonl"}
)
DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Section:
    """Characters ``start:end`` of a document's text, under ``heading`` (outermost first)."""

    start: int
    end: int
    heading: tuple[str, ...] = ()


@dataclass
class Document:
    source: str  # the path as the index spells it
    text: str
    sections: list[Section] = field(default_factory=list)

    def __post_init__(self):
        if not self.sections:
            self.sections = [Section(0, len(self.text))]


@dataclass(frozen=True)
class Chunk:
    source: str
    start: int  # character offsets in the document's text
    end: int
    line_start: int  # 1-based, inclusive
    line_end: int
    heading: tuple[str, ...]
    text: str

    @property
    def heading_text(self) -> str:
        return " > ".join(self.heading)


# --- finding files -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FoundFile:
    path: Path  # as the user spelled it (under a root)
    source: str  # the key stored in the index (relative to the current folder when inside it)
    size: int
    mtime: float


def source_key(path: Path) -> str:
    """How the index names a file: relative to the current folder when inside it, else absolute; never
    resolved through symlinks, so it reads like the user's own path."""
    absolute = os.path.abspath(path)
    cwd = os.getcwd()
    try:
        inside = os.path.commonpath([absolute, cwd]) == cwd
    except ValueError:
        inside = False
    return os.path.relpath(absolute, cwd) if inside else absolute


def find_documents(
    roots: Sequence[os.PathLike | str],
    *,
    extensions: frozenset[str] = DOCUMENT_EXTENSIONS,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> tuple[list[FoundFile], list[BadFile]]:
    """Every document file under ``roots`` (a root may be a file), sorted, and the entries skipped.

    Folders are walked without leaving them: a symlink is followed only while its target stays inside
    the root it was found under; names starting with "." are skipped; each real folder is visited once.
    A file over ``max_bytes`` is reported, not read. An explicitly named file is taken whatever its
    extension only if a loader knows it.
    """
    found: dict[str, FoundFile] = {}
    bad: list[BadFile] = []
    for root in roots:
        root = Path(os.fsdecode(root))
        try:
            info = os.stat(root)
        except FileNotFoundError:
            bad.append(BadFile(root, "no such file or folder"))
            continue
        except OSError as error:
            bad.append(BadFile(root, f"unreadable ({(error.strerror or str(error)).lower()})"))
            continue
        if stat.S_ISDIR(info.st_mode):
            files = _walk(root, extensions, bad)
        elif stat.S_ISREG(info.st_mode):
            if _extension(root.name) == "" and extensions is DOCUMENT_EXTENSIONS:
                if not looks_like_text(root):
                    bad.append(BadFile(root, "a file without an extension that is not UTF-8 text"))
                    continue
            elif _extension(root.name) not in extensions:
                bad.append(BadFile(root, f"no loader for {_extension(root.name) or 'files without an extension'} "
                                         f"(known: {', '.join(sorted(extensions))})"))
                continue
            files = [root]
        else:
            bad.append(BadFile(root, "not a regular file or folder"))
            continue
        for path in files:
            try:
                info = os.stat(path)
            except OSError as error:
                bad.append(BadFile(path, f"unreadable ({(error.strerror or str(error)).lower()})"))
                continue
            if info.st_size > max_bytes:
                bad.append(BadFile(path, f"{info.st_size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB cap "
                                         "(raise --max-file-mb)"))
                continue
            key = source_key(path)
            found.setdefault(key, FoundFile(path, key, info.st_size, info.st_mtime))
    return sorted(found.values(), key=lambda f: f.source), bad


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _walk(root: Path, extensions: frozenset[str], bad: list[BadFile]) -> list[Path]:
    root_real = os.path.realpath(root)
    out: list[Path] = []
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in visited:
                continue
            visited.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as error:
            bad.append(BadFile(folder, f"unreadable folder ({(error.strerror or str(error)).lower()})"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            wanted = _extension(entry.name) in extensions
            # README, LICENSE, METADATA, Makefile...: taken when they read as text (a binary is passed over).
            maybe_text = not wanted and extensions is DOCUMENT_EXTENSIONS and _extension(entry.name) == ""
            try:
                if entry.is_symlink():
                    try:
                        target = os.stat(path)
                    except OSError:
                        if wanted:
                            bad.append(BadFile(path, "dangling symlink or symlink loop"))
                        continue
                    real = os.path.realpath(path)
                    if os.path.commonpath([real, root_real]) != root_real:
                        if wanted or stat.S_ISDIR(target.st_mode):
                            bad.append(BadFile(path, f"symlink leads outside {display_path(root_real)}"))
                        continue
                    is_dir, is_file = stat.S_ISDIR(target.st_mode), stat.S_ISREG(target.st_mode)
                else:
                    is_dir, is_file = entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)
            except (OSError, ValueError):
                bad.append(BadFile(path, "unreadable entry"))
                continue
            if is_dir:
                subfolders.append(path)
            elif is_file and (wanted or (maybe_text and looks_like_text(path))):
                out.append(path)
        stack.extend(reversed(subfolders))
    return out


TEXT_SNIFF_BYTES = 64 * 1024


def looks_like_text(path: Path) -> bool:
    """The start of the file is UTF-8 without NUL bytes (a character cut at the end of the sample is fine)."""
    import codecs

    try:
        with open(path, "rb") as handle:
            sample = handle.read(TEXT_SNIFF_BYTES)
    except OSError:
        return False
    if not sample or b"\x00" in sample:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- loaders -------------------------------------------------------------------------------------

class DocumentError(Exception):
    """A file that cannot be read as a document; ``str`` is a short reason for people."""


def load_document(path: Path, source: str, *, text_field: str = "text", data: bytes | None = None) -> Document:
    """Read ``path`` as a :class:`Document` using the loader for its extension."""
    extension = _extension(path.name)
    loader = _LOADERS.get(extension)
    if loader is None:
        raise DocumentError(f"no loader for {extension or 'files without an extension'}")
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DocumentError(f"unreadable ({(error.strerror or str(error)).lower()})") from None
    if extension == ".pdf":
        return _load_pdf(data, source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentError(f"not UTF-8 text (byte {error.start})") from None
    if "\x00" in text:
        raise DocumentError("binary data (NUL bytes) in a text file")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if extension in (".json", ".jsonl"):
        return _load_json(text, source, text_field, jsonl=extension == ".jsonl")
    return loader(text, source)


def _load_plain(text: str, source: str) -> Document:
    # Plain text often carries reStructuredText-style underlined titles (pydoc topics, READMEs).
    return Document(source, text, _sections_from_headings(text, _rst_headings(text)))


def _load_markdown(text: str, source: str) -> Document:
    return Document(source, text, _sections_from_headings(text, _markdown_headings(text)))


def _load_python(text: str, source: str) -> Document:
    # Top-level classes and functions are the natural sections of a module.
    headings = []
    for match in re.finditer(r"^(class|def|async def)\s+([A-Za-z_]\w*)", text, flags=re.M):
        headings.append((match.start(), 1, f"{match.group(1)} {match.group(2)}"))
    return Document(source, text, _sections_from_headings(text, headings))


_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_MD_FENCE = re.compile(r"^(```|~~~)", re.M)


def _markdown_headings(text: str) -> list[tuple[int, int, str]]:
    fences = [m.start() for m in _MD_FENCE.finditer(text)]
    headings = []
    for match in _MD_HEADING.finditer(text):
        if bisect.bisect_left(fences, match.start()) % 2 == 1:  # inside a code fence: a comment, not a title
            continue
        headings.append((match.start(), len(match.group(1)), match.group(2).strip()))
    return headings + _rst_headings(text, setext_only=True)


_UNDERLINE = re.compile(r"^([=\-~^*+#\"'`:.])\1{2,}[ \t]*$")


def _rst_headings(text: str, setext_only: bool = False) -> list[tuple[int, int, str]]:
    """Titles underlined (and optionally overlined) by a repeated punctuation character; levels follow
    the order in which underline styles first appear, as in reStructuredText."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    styles: list[str] = []
    headings = []
    for i in range(1, len(lines)):
        match = _UNDERLINE.match(lines[i])
        title = lines[i - 1].strip()
        if not match or not title or _UNDERLINE.match(lines[i - 1]) or len(lines[i].rstrip()) < len(title) * 0.7:
            continue
        if setext_only and match.group(1) not in "=-":
            continue
        if i >= 2 and lines[i - 2].strip() and not _UNDERLINE.match(lines[i - 2]):
            continue  # a title is a paragraph of its own
        overlined = i >= 2 and _UNDERLINE.match(lines[i - 2]) is not None
        style = ("over" if overlined else "") + match.group(1)
        if style not in styles:
            styles.append(style)
        start = offsets[i - 2] if overlined else offsets[i - 1]
        headings.append((start, styles.index(style) + 1, title))
    return headings


def _sections_from_headings(text: str, headings: list[tuple[int, int, str]]) -> list[Section]:
    """Sections from (offset, level, title) triples: each runs to the next heading; the path is the
    chain of enclosing titles."""
    headings = sorted(headings)
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    previous_start, previous_path = 0, ()
    for offset, level, title in headings:
        if offset > previous_start:
            sections.append(Section(previous_start, offset, previous_path))
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
        previous_start, previous_path = offset, tuple(t for _, t in path)
    sections.append(Section(previous_start, len(text), previous_path))
    return [s for s in sections if text[s.start:s.end].strip()]


class _HTMLText(HTMLParser):
    """Readable text of an HTML page: scripts, styles and markup dropped, block elements as line breaks,
    h1-h6 as section headings."""

    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header", "footer",
              "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "dd", "hr", "title", "main", "nav"}
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.skip_depth = 0
        self.in_pre = 0
        self.heading_level = 0
        self.heading_text: list[str] = []
        self.headings: list[tuple[int, int, str]] = []
        self.title: list[str] = []
        self.in_title = False

    def _write(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def _break(self, blank: bool = False) -> None:
        tail = "".join(self.parts[-2:])
        want = "\n\n" if blank else "\n"
        if not tail or tail.endswith(want):
            return
        self._write("\n" if tail.endswith("\n") else want)

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        if tag in self.SKIP:
            self.skip_depth += 1
            return
        if tag == "pre":
            self.in_pre += 1
        if tag in self.BLOCKS:
            self._break(blank=tag in {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "blockquote"})
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self.heading_level = int(tag[1])
            self.heading_text = []
            self.headings.append((self.length, self.heading_level, ""))

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag == "pre":
            self.in_pre = max(0, self.in_pre - 1)
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456" and self.heading_level:
            offset, level, _ = self.headings[-1]
            self.headings[-1] = (offset, level, " ".join("".join(self.heading_text).split()))
            self.heading_level = 0
        if tag in self.BLOCKS:
            self._break(blank=tag in {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "blockquote"})

    def handle_data(self, data):
        if self.in_title:
            self.title.append(data)
        if self.skip_depth:
            return
        if not self.in_pre:
            data = re.sub(r"\s+", " ", data)
            if self.parts and self.parts[-1].endswith(("\n", " ")):
                data = data.lstrip(" ")
        if self.heading_level:
            self.heading_text.append(data)
        if data:
            self._write(data)


def _load_html(text: str, source: str) -> Document:
    parser = _HTMLText()
    try:
        parser.feed(text)
        parser.close()
    except Exception as error:  # html.parser is lenient; anything left is a broken file
        raise DocumentError(f"unreadable HTML ({error})") from None
    body = "".join(parser.parts)
    headings = [(o, lvl, t) for o, lvl, t in parser.headings if t]
    return Document(source, body, _sections_from_headings(body, headings))


def _load_pdf(data: bytes, source: str) -> Document:
    import io

    try:
        from pypdf import PdfReader
    except ImportError:
        raise DocumentError("reading PDF needs pypdf: pip install 'tlcli[rag]'") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as error:  # pypdf raises many kinds on broken or encrypted files
        raise DocumentError(f"unreadable PDF ({type(error).__name__}: {str(error)[:80]})") from None
    text, sections = "", []
    for number, page in enumerate(pages, start=1):
        page = page.replace("\r\n", "\n").strip()
        if not page:
            continue
        start = len(text)
        text += page + "\n\n"
        sections.append(Section(start, len(text), (f"page {number}",)))
    return Document(source, text, sections or [Section(0, 0)])


def _load_notebook(text: str, source: str) -> Document:
    try:
        notebook = json.loads(text)
        cells = notebook["cells"]
    except RecursionError:
        raise DocumentError("JSON nested too deeply to be a notebook") from None
    except (ValueError, KeyError, TypeError):
        raise DocumentError("not a Jupyter notebook (no cells)") from None
    body, headings = "", []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        content = cell.get("source", "")
        content = "".join(content) if isinstance(content, list) else str(content)
        if not content.strip():
            continue
        start = len(body)
        if cell.get("cell_type") == "markdown":
            headings += [(start + o, lvl, t) for o, lvl, t in _markdown_headings(content)]
        body += content.rstrip("\n") + "\n\n"
    return Document(source, body, _sections_from_headings(body, headings))


def _load_json(text: str, source: str, text_field: str, jsonl: bool) -> Document:
    """Each record's ``text_field`` is a section of its own (its heading: the record number or id)."""
    if jsonl:
        records = []
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except RecursionError:
                    raise DocumentError(f"line {number} is JSON nested too deeply to be a record") from None
                except ValueError:
                    raise DocumentError(f"line {number} is not JSON") from None
    else:
        try:
            loaded = json.loads(text)
        except RecursionError:
            raise DocumentError("JSON nested too deeply to hold records") from None
        except ValueError as error:
            raise DocumentError(f"not JSON ({error})") from None
        records = loaded if isinstance(loaded, list) else [loaded]
    body, sections = "", []
    for number, record in enumerate(records, start=1):
        value = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(value, str) or not value.strip():
            continue
        label = record.get("id", record.get("title", number))
        start = len(body)
        body += value.strip() + "\n\n"
        sections.append(Section(start, len(body), (f"record {label}",)))
    if not sections:
        raise DocumentError(f"no record has a text field {text_field!r} (set --text-field)")
    return Document(source, body, sections)


_LOADERS: dict[str, Callable[[str, str], Document]] = {
    ".txt": _load_plain,
    ".rst": _load_plain,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".py": _load_python,
    ".html": _load_html,
    ".htm": _load_html,
    ".ipynb": _load_notebook,
    ".pdf": lambda text, source: Document(source, text),  # dispatched on bytes in load_document
    ".json": lambda text, source: Document(source, text),  # dispatched with text_field in load_document
    ".jsonl": lambda text, source: Document(source, text),
    "": _load_plain,  # README, LICENSE, METADATA: found only when they read as text
}


# --- chunking ------------------------------------------------------------------------------------

class Tokenizer:
    """What chunking needs from a tokenizer: token character spans of a text (no special tokens)."""

    def spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:  # pragma: no cover - interface
        raise NotImplementedError


class HFTokenizer(Tokenizer):
    """A Hugging Face fast tokenizer (the embedder's own, so chunk sizes match what the model sees)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                                 return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [[(a, b) for a, b in offsets] for offsets in encoded["offset_mapping"]]


class WhitespaceTokenizer(Tokenizer):
    """Words as tokens: for tests and for callers with no model at hand."""

    def spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in re.finditer(r"\S+", text)] for text in texts]


def chunk_documents(
    documents: Iterable[Document], tokenizer: Tokenizer, *, max_tokens: int = 200, overlap: int = 30,
    merge_sections: bool = False,
) -> list[list[Chunk]]:
    """The chunks of each document (one list per document, in order). ``merge_sections``: consecutive
    sections that fit in one chunk together share it, under their common heading path (`rag index` keeps
    sections apart: merging measured no better, docs/rag-benchmarks.md)."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    if not 0 <= overlap < max_tokens // 2:
        raise ValueError("overlap must be from 0 to half of max_tokens")
    documents = list(documents)
    pieces = [(d_i, s) for d_i, d in enumerate(documents) for s in d.sections]
    spans = tokenizer.spans([documents[d_i].text[s.start:s.end] for d_i, s in pieces]) if pieces else []
    sections: list[list[tuple[Section, list[tuple[int, int]]]]] = [[] for _ in documents]
    for (d_i, section), token_spans in zip(pieces, spans):
        sections[d_i].append((section, token_spans))
    out: list[list[Chunk]] = [[] for _ in documents]
    for d_i, document in enumerate(documents):
        line_starts = _line_starts(document.text)
        for start, end, heading in _section_windows(document.text, sections[d_i], max_tokens, overlap,
                                                    merge_sections):
            text = document.text[start:end]
            stripped = text.strip()
            if not stripped:
                continue
            start += len(text) - len(text.lstrip())
            end = start + len(stripped)
            out[d_i].append(Chunk(
                source=document.source, start=start, end=end,
                line_start=bisect.bisect_right(line_starts, start),
                line_end=bisect.bisect_right(line_starts, max(start, end - 1)),
                heading=heading, text=stripped,
            ))
    return out


def _section_windows(text: str, sections: list[tuple[Section, list[tuple[int, int]]]], max_tokens: int,
                     overlap: int, merge: bool) -> list[tuple[int, int, tuple[str, ...]]]:
    """``(start, end, heading)`` of each chunk of one document: every section windowed on its own, or with
    ``merge`` runs of consecutive sections that fit in ``max_tokens`` together as one chunk."""
    out: list[tuple[int, int, tuple[str, ...]]] = []
    pack: list[Section] = []
    packed_tokens = 0

    def close_pack() -> None:
        nonlocal pack, packed_tokens
        if pack:
            out.append((pack[0].start, pack[-1].end, _common_heading([s.heading for s in pack])))
        pack, packed_tokens = [], 0

    for section, token_spans in sections:
        if merge and len(token_spans) <= max_tokens:
            if packed_tokens + len(token_spans) > max_tokens:
                close_pack()
            pack.append(section)
            packed_tokens += len(token_spans)
            continue
        close_pack()
        out += [(section.start + a, section.start + b, section.heading)
                for a, b in _windows(text[section.start:section.end], token_spans, max_tokens, overlap)]
    close_pack()
    return out


def _common_heading(headings: list[tuple[str, ...]]) -> tuple[str, ...]:
    common = headings[0]
    for heading in headings[1:]:
        n = 0
        while n < min(len(common), len(heading)) and common[n] == heading[n]:
            n += 1
        common = common[:n]
    return common


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _windows(text: str, spans: list[tuple[int, int]], max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Character windows of at most ``max_tokens`` tokens covering ``text``; each window ends at the best
    break in its last half (blank line > line end > sentence end > any token), the next starts at most
    ``overlap`` tokens earlier, at a word start."""
    n = len(spans)
    if n <= max_tokens:
        return [(0, len(text))] if n else []
    windows = []
    first = 0
    while first < n:
        last = min(first + max_tokens, n)  # exclusive token index
        if last < n:
            last = _best_break(text, spans, first + max_tokens // 2, last)
        start = 0 if first == 0 else spans[first][0]
        end = len(text) if last >= n else spans[last][0]
        windows.append((start, end))
        if last >= n:
            break
        # The next window repeats at most ``overlap`` tokens, starting at a word: from ``last - overlap`` it
        # moves forward to a word start (none before ``last``: no overlap). Moving back instead would, inside
        # a long "word" (a table rule, a URL, base64), repeat nearly the whole window one token further on.
        following = max(last - overlap, first + 1)
        while following < last and not _word_start(text, spans, following):
            following += 1
        first = following
    return windows


def _word_start(text: str, spans: list[tuple[int, int]], i: int) -> bool:
    begin = spans[i][0]
    return begin == 0 or text[begin - 1].isspace()


def _best_break(text: str, spans: list[tuple[int, int]], low: int, high: int) -> int:
    """The token index in (low, high] before which to cut, by the strength of the gap before it."""
    best, best_score = high, -1
    for i in range(high, low, -1):
        gap = text[spans[i - 1][1]:spans[i][0]]
        if "\n\n" in gap:
            score = 3
        elif "\n" in gap:
            score = 2
        elif gap and text[spans[i - 1][1] - 1] in ".!?:;":
            score = 1
        elif gap:
            score = 0
        else:
            score = -1  # inside a word
        if score > best_score:
            best, best_score = i, score
            if score == 3:
                break
    return best
