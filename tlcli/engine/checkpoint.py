"""Checkpoints that survive Ctrl-C, kill -9 and power loss.

Each checkpoint is a folder ``checkpoints/step-00000040/`` (or ``best-step-...``) holding
``model.safetensors``, ``optimizer.safetensors``, ``rng.safetensors`` and ``state.json`` (progress,
optimizer hyper-parameters, Python/NumPy RNG). It is written into a temporary folder, every file fsynced,
a ``COMPLETE`` marker written last, then renamed into place; older checkpoints are deleted only after.
A folder without the marker is torn and skipped on resume. Nothing is unpickled: safetensors and JSON only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tlcli.runs.paths import fsync_dir

COMPLETE_MARKER = "COMPLETE"


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    # clone(): safetensors refuses tensors that share storage (tied weights, views).
    try:
        save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, str(path))
    except Exception as error:
        # safetensors reports a full disk as SafetensorError("... (os error 28)"): make it the OSError it is.
        code = os_error_code(error)
        if code is None:
            raise
        raise OSError(code, os.strerror(code)) from None
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def os_error_code(error: BaseException) -> int | None:
    """The errno of an OSError, or of an I/O failure a native library reported as text ``(os error N)``."""
    if isinstance(error, OSError):
        return error.errno
    found = re.search(r"\(os error (\d+)\)", str(error))
    return int(found.group(1)) if found else None


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def remove_leftovers(root: Path) -> list[Path]:
    """Delete the temporary folders an earlier checkpoint left in ``root`` (killed, or failed on a full disk).

    Only one process writes a run (the run folder is locked), so every ``.tmp-*`` entry here is stale."""
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(".tmp-"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed.append(entry)
    return removed


def flatten_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value
            else:
                meta["state"].setdefault(str(index), {})[key] = value
    return tensors, meta


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["state"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    np_state = np.random.get_state()
    meta = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(
    root: Path, name: str, model_state: dict[str, torch.Tensor], optimizer_state: dict | None,
    progress: dict, keep_prefix: str | None = None,
) -> Path:
    """Write checkpoint ``root/name`` atomically; then delete older ones whose name starts with
    ``keep_prefix`` (so exactly one of that kind remains). Returns the folder."""
    root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root)
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    try:
        tmp.mkdir()
        _save_tensors(model_state, tmp / "model.safetensors")
        state: dict[str, Any] = {"progress": progress}
        if optimizer_state is not None:
            opt_tensors, opt_meta = flatten_optimizer_state(optimizer_state)
            _save_tensors(opt_tensors, tmp / "optimizer.safetensors")
            state["optimizer"] = opt_meta
        rng_tensors, rng_meta = capture_rng()
        _save_tensors(rng_tensors, tmp / "rng.safetensors")
        state["rng"] = rng_meta
        _write_json(tmp / "state.json", state)
        _write_json(tmp / COMPLETE_MARKER, {"ok": True})
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as error:
        # A full disk, Ctrl-C: leave nothing half-written behind (the previous checkpoint is untouched).
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and error.filename is None:  # say which checkpoint could not be written
            raise OSError(error.errno, error.strerror, str(final)) from None
        raise
    fsync_dir(root)
    if keep_prefix:
        for other in root.iterdir():
            if other.name.startswith(keep_prefix) and other != final and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
    return final


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file() and (folder / "state.json").is_file()


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def latest_checkpoint(root: Path, prefix: str = "step-") -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint with ``prefix``, and the torn ones that were skipped."""
    if not root.is_dir():
        return None, []
    candidates = sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)), key=_step_of, reverse=True
    )
    torn = []
    for folder in candidates:
        if is_complete(folder):
            return folder, torn
        torn.append(folder)
    return None, torn


def load_checkpoint(folder: Path) -> dict:
    """Everything a resume needs; tensors on the CPU."""
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    out = {"progress": state["progress"], "model": load_file(str(folder / "model.safetensors"))}
    if "optimizer" in state and (folder / "optimizer.safetensors").exists():
        out["optimizer"] = unflatten_optimizer_state(load_file(str(folder / "optimizer.safetensors")), state["optimizer"])
    out["rng"] = (load_file(str(folder / "rng.safetensors")), state["rng"])
    return out
