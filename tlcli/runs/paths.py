"""Run folders and cache folders. ``TLCLI_HOME`` overrides the cache root (default ~/.cache/tlcli)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RUNS_ROOT = Path("runs")

# Files inside a run folder (see ARCHITECTURE.md, "Run folder").
CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
# Written by `tlcli monitor` (key `s`) or by hand; the engine checkpoints and ends with status "stopped".
STOP_REQUEST_FILE = "stop-request"
# Written by Run.create: the folder is a run that tlcli made (what --overwrite may replace).
RUN_MARKER_FILE = ".tlcli-run"


def tlcli_home() -> Path:
    return Path(os.environ.get("TLCLI_HOME") or Path.home() / ".cache" / "tlcli")


def cache_dir(kind: str) -> Path:
    """A cache folder of one kind (``features``, ``text-embeddings``, ...), created on demand."""
    path = tlcli_home() / kind
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        from tlcli.console.errors import UsageError
        from tlcli.console.output import display_path

        where = "TLCLI_HOME" if os.environ.get("TLCLI_HOME") else "the cache folder (TLCLI_HOME unset)"
        raise UsageError(f"{where} {display_path(tlcli_home())}: cannot create {kind}/ there "
                         f"({(error.strerror or str(error)).lower()}); set TLCLI_HOME to a writable folder") from None
    return path


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: some file systems refuse to fsync a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temporary behind
        if isinstance(error, OSError) and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
