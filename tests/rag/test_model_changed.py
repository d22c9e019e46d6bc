"""An index remembers its model by content: weights replaced in place under `--model ./dir` are refused
(search and update) with the fix; a byte-identical copy of the folder elsewhere is the same model."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

DOCS = {"docs/install.md": "# Installing\n\nRun pip install tlcli in a fresh virtual environment.\n",
        "notes/garden.txt": "Water the tomatoes every morning in summer.\n"}


@pytest.fixture
def corpus_with_local_model(tmp_path, cli, monkeypatch):
    from tlcli.models.text import packaged_minilm_path

    packaged = packaged_minilm_path()
    if packaged is None:
        pytest.skip("the packaged MiniLM is not installed")
    root = tmp_path / "corpus"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    shutil.copytree(packaged, tmp_path / "m")
    monkeypatch.chdir(root)
    result = cli("rag", "index", "docs", "notes", "--model", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    return tmp_path


def replace_weights_in_place(model: Path) -> None:
    """Other weights of the same size and modification time (as `cp -p` or `rsync -a` leave them)."""
    path = model / "model.safetensors"
    stat = path.stat()
    data = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", bytes(data[:8]))[0]
    block = np.frombuffer(bytes(data[start:start + 1 << 20]), dtype=np.float32)
    data[start:start + 1 << 20] = block[::-1].tobytes()  # the same floats, other places: still finite
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_weights_replaced_in_place_are_refused_with_the_fix(corpus_with_local_model, cli):
    replace_weights_in_place(corpus_with_local_model / "m")
    for args in (["rag", "search", "pip install"], ["rag", "search", "pip install", "--mode", "dense"]):
        result = cli(*args)
        assert result.exit_code == 2, result.stderr
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1 and "changed since" in message and "--reembed" in message
    assert cli("rag", "search", "pip install", "--mode", "lexical").exit_code == 0  # no model needed
    Path("docs/new.md").write_text("# New\n\nA page about tomatoes.\n")
    result = cli("rag", "index", "docs", "notes")
    assert result.exit_code == 2 and "changed since" in result.stderr and "--reembed" in result.stderr
    assert cli("rag", "index", "docs", "notes", "--reembed").exit_code == 0
    assert cli("rag", "search", "pip install").exit_code == 0


def test_a_byte_identical_copy_elsewhere_is_the_same_model(corpus_with_local_model, cli):
    copy = corpus_with_local_model / "elsewhere" / "copy"
    shutil.copytree(corpus_with_local_model / "m", copy)
    result = cli("rag", "search", "pip install", "--model", str(copy))
    assert result.exit_code == 0, result.stderr
    Path("docs/new.md").write_text("# New\n\nA page about tomatoes.\n")
    result = cli("rag", "index", "docs", "notes", "--model", str(copy))
    assert result.exit_code == 0, result.stderr
    replace_weights_in_place(copy)
    result = cli("rag", "search", "pip install", "--model", str(copy))
    assert result.exit_code == 2 and ("another model" in result.stderr or "changed since" in result.stderr)
