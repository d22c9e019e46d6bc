"""Shared corpora and indexes for the RAG tests. The real offline MiniLM embeds everything; each index is
built once per session and copied by tests that change it."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

QUESTIONS = Path(__file__).with_name("pydoc_questions.jsonl")

SMALL_DOCS = {
    "docs/install.md": "# Installing\n\nRun pip install tlcli in a fresh virtual environment.\n\n"
                       "## Offline\n\nSet HF_HUB_OFFLINE=1 so no download is tried.\n",
    "docs/errors.md": "# Errors\n\nExit code 2 means bad usage. The error E4021 means the index folder is locked "
                      "by another process.\n\n## Tracebacks\n\nPass --debug to see a traceback.\n",
    "docs/cooking.txt": "Boil the pasta in salted water for nine minutes, then drain it and add the sauce.\n",
    "notes/garden.rst": "Garden\n======\n\nWater the tomatoes every morning in summer.\n\nPests\n-----\n\n"
                        "Aphids are removed with soapy water.\n",
    "notes/weather.txt": "Rain is expected on Tuesday; bring an umbrella to the station.\n",
}


@contextmanager
def chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def build(root: Path, paths: list[str], index: str = ".tlcli-index", **options):
    from tlcli_rag.build import IndexConfig, build_index

    with chdir(root):
        return build_index(IndexConfig(paths=paths, index=index, **options))


@pytest.fixture(scope="session")
def small_index(tmp_path_factory) -> Path:
    """A folder holding SMALL_DOCS and their index in .tlcli-index (do not modify: copy it)."""
    root = tmp_path_factory.mktemp("small")
    write_files(root, SMALL_DOCS)
    build(root, ["docs", "notes"])
    return root


@pytest.fixture
def small_copy(small_index, tmp_path) -> Path:
    """A private copy of the small corpus and its index, for tests that change them."""
    root = tmp_path / "small"
    shutil.copytree(small_index, root, symlinks=True)
    return root


@pytest.fixture(scope="session")
def pydoc_index(tmp_path_factory) -> Path:
    """Python's own documentation topics (pydoc_data.topics), one file per topic, indexed with MiniLM."""
    from pydoc_data.topics import topics

    root = tmp_path_factory.mktemp("pydoc")
    write_files(root, {f"topics/{name}.txt": text for name, text in topics.items()})
    build(root, ["topics"])
    return root


def pydoc_questions() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
