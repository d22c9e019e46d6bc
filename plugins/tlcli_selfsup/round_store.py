"""What `tlcli pseudolabel` keeps of each round on disk, so `--resume` skips the rounds that finished.

``RUN_DIR/rounds/round-N/`` holds the round's engine run (``checkpoints/``, the exported ``model/``), the
images it trains on (``selection.json``, written before training starts) and, once the round finished and its
model was exported, ``round.json`` (the round's row of the table): that file is the round's done marker. Each
file is written to a temporary name and renamed, so a kill -9 leaves a round either done or resumable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tlcli.runs.paths import CHECKPOINTS_DIR, MODEL_DIR, atomic_write_text

DONE_FILE = "round.json"
SELECTION_FILE = "selection.json"


class RoundStore:
    """The ``rounds/`` folder of one pseudolabel run. Only a ``writable`` store (rank 0) writes."""

    def __init__(self, root: Path, writable: bool = True):
        self.root, self.writable = Path(root), writable

    def folder(self, index: int) -> Path:
        return self.root / f"round-{index}"

    # --- a finished round ------------------------------------------------------------------------------

    def finished(self, index: int) -> dict | None:
        """The saved record ``{"row", "kept"}`` of round ``index`` if it finished, else None."""
        return _read_json(self.folder(index) / DONE_FILE)

    def mark_finished(self, index: int, row: dict, kept: list[int]) -> None:
        """Record round ``index`` as done: call only once its model is exported (or it trained nothing)."""
        if self.writable:
            self.folder(index).mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.folder(index) / DONE_FILE, json.dumps({"row": row, "kept": kept}))

    def weights(self, index: int) -> dict | None:
        """The classifier round ``index`` exported, or None when it exported none (it took no step)."""
        path = self.folder(index) / MODEL_DIR / "model.safetensors"
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        return load_file(str(path))

    # --- a round in progress ---------------------------------------------------------------------------

    def selection(self, index: int) -> tuple[list[int], list[int]] | None:
        """The unlabelled images (indices) and pseudo-labels round ``index`` trains on, if already chosen."""
        saved = _read_json(self.folder(index) / SELECTION_FILE)
        return None if saved is None else (saved["kept"], saved["labels"])

    def save_selection(self, index: int, kept: list[int], labels: list[int]) -> None:
        if self.writable:
            self.folder(index).mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.folder(index) / SELECTION_FILE, json.dumps({"kept": kept, "labels": labels}))

    def has_checkpoint(self, index: int) -> bool:
        from tlcli.engine.checkpoint import latest_checkpoint

        folder, _ = latest_checkpoint(self.folder(index) / CHECKPOINTS_DIR)
        return folder is not None

    def clear_checkpoints(self, index: int) -> None:
        """A round that restarts from scratch (killed before its first checkpoint) must not find a stale
        best-model checkpoint of the attempt that died."""
        if self.writable:
            shutil.rmtree(self.folder(index) / CHECKPOINTS_DIR, ignore_errors=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
