"""Where an export is written, and how: every file tlcli writes for ``FILE`` starts with ``FILE``.

- ``FILE`` (``model.onnx`` or ``model.pt``): the graph, its metadata inside;
- ``FILE.json``: the same metadata for people and other tools, with the sha256 of every file written;
- ``FILE.tokenizer/`` (text models): the tokenizer files (``tokenizer.json`` for the ``tokenizers``
  library, and what Hugging Face's ``AutoTokenizer.from_pretrained`` reads).

Nothing tlcli did not write is replaced: an existing ``FILE`` must carry tlcli's metadata, an existing
``FILE.json`` must be tlcli's, and an existing tokenizer folder must be named by that ``FILE.json``. Each
file is written to a temporary name in the same folder and renamed into place; ``FILE.json`` first, the
tokenizer next and ``FILE`` last, so that a complete ``FILE`` is never beside a tokenizer it was not
exported with (the graph's metadata holds the tokenizer's sha256, and ``tlcli predict`` checks it).
Temporaries left by a crash are removed by the next export to the same name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.export.spec import MARKER
from tlcli.runs.events import writer_alive

SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".torchscript")}
DEFAULT_NAMES = {"onnx": "model.onnx", "torchscript": "model.pt"}
EXPORT_DIR = "export"


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def tokenizer_dir_of(path: Path) -> Path:
    return path.with_name(path.name + ".tokenizer")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def target_path(run_root: Path, fmt: str, out: str | None) -> Path:
    """``--out``, checked (its suffix says the format, its folder exists), or RUN_DIR/export/model.onnx|pt."""
    if out is None:
        return Path(run_root) / EXPORT_DIR / DEFAULT_NAMES[fmt]
    path = Path(out)
    if path.suffix.lower() not in SUFFIXES[fmt]:
        raise UsageError(f"--out {out}: a {fmt} file ends in {' or '.join(SUFFIXES[fmt])} (tlcli predict tells the "
                         f"format from it); e.g. --out {path.with_suffix(SUFFIXES[fmt][0]).name}")
    if path.is_dir():
        raise UsageError(f"--out {out} is a folder; pass a file name, e.g. --out {path / DEFAULT_NAMES[fmt]}")
    if not path.parent.is_dir():
        raise UsageError(f"--out {out}: folder {display_path(path.parent)} does not exist; create it or pick another path")
    return path


def written_by_tlcli(path: Path) -> bool:
    """Whether an existing model file carries tlcli's export metadata (ONNX metadata_props or TorchScript
    extra file)."""
    if path.suffix.lower() == ".onnx":
        try:
            import onnx

            model = onnx.load(str(path), load_external_data=False)
        except Exception:  # not an ONNX file at all
            return False
        return any(entry.key == MARKER for entry in model.metadata_props)
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(f"/extra/{MARKER}.json") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def read_sidecar(path: Path) -> dict | None:
    """FILE.json when tlcli wrote it (a JSON object with the marker), else None."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and MARKER in value else None


def check_replaceable(path: Path, with_tokenizer: bool) -> bool:
    """Refuse (UsageError) when writing ``path`` would replace a file tlcli did not write; True when an
    earlier export is being replaced."""
    sidecar, tokenizer = sidecar_of(path), tokenizer_dir_of(path)

    def refuse(what: Path, why: str) -> UsageError:
        return UsageError(f"{display_path(what)} exists and {why}; tlcli replaces only its own exports. Pass "
                          "another --out, or move it away")

    if path.is_dir() or sidecar.is_dir():
        raise refuse(path if path.is_dir() else sidecar, "is a folder")
    if path.exists() and not written_by_tlcli(path):
        raise refuse(path, "was not written by tlcli export")
    ours = read_sidecar(sidecar) if sidecar.exists() else None
    if sidecar.exists() and ours is None:
        raise refuse(sidecar, "is not tlcli's export metadata")
    if tokenizer.exists():
        named = ours is not None and (ours.get("files") or {}).get("tokenizer") == tokenizer.name
        if not tokenizer.is_dir() or not named:
            raise refuse(tokenizer, "was not written by tlcli export")
    return path.exists() or ours is not None or (with_tokenizer and tokenizer.exists())


def remove_leftovers(path: Path) -> None:
    """Temporaries of an export to ``path`` that crashed (their process is gone)."""
    for prefix in (f".{path.name}.tmp-", f".{path.name}.json.tmp-", f".{path.name}.tokenizer.tmp-",
                   f".{path.name}.tokenizer.old-"):
        for leftover in path.parent.glob(prefix + "*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier export of this process that failed: ours to clear
    return writer_alive(pid)


def write_export(path: Path, data: bytes, sidecar: dict, tokenizer_files: dict[str, bytes]) -> None:
    """FILE.json, then FILE.tokenizer/ (when given), then FILE, each renamed into place."""
    from tlcli.runs.paths import atomic_write_bytes, fsync_dir

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(sidecar_of(path), (json.dumps(sidecar, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    if tokenizer_files:
        _replace_folder(tokenizer_dir_of(path), tokenizer_files)
    atomic_write_bytes(path, data)
    fsync_dir(path.parent)


def _replace_folder(folder: Path, files: dict[str, bytes]) -> None:
    pid = os.getpid()
    fresh = folder.with_name(f".{folder.name}.tmp-{pid}")
    old = folder.with_name(f".{folder.name}.old-{pid}")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    try:
        for name, content in files.items():
            with open(fresh / name, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        if folder.exists():
            os.replace(folder, old)
        os.replace(fresh, folder)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        if old.exists() and not folder.exists():
            os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)
