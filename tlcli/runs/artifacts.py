"""A run's exported model, ``model/``: written and read the same way by every plugin.

Layout: ``model.json`` (``kind``, ``plugin``, ``format`` and the plugin's own fields), ``labels.json`` (class
names in output order) when the model classifies, ``preprocessing.json`` when it has one, and tensors as
safetensors (never pickle). Write it inside :meth:`tlcli.runs.run.Run.model_writer` so it appears in one rename.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcli.console.errors import UsageError

MODEL_JSON = "model.json"
LABELS_JSON = "labels.json"
PREPROCESSING_JSON = "preprocessing.json"
FORMAT = 1


def write_model(folder: Path, *, kind: str, plugin: str, tensors: dict[str, Any] | None = None,
                weights_file: str = "model.safetensors", labels: list[str] | None = None,
                preprocessing: dict | None = None, **meta: Any) -> Path:
    """Write one exported model into ``folder`` (a temporary folder from ``Run.model_writer``).

    ``tensors`` may hold torch tensors or NumPy arrays (not both); they are copied to contiguous CPU memory.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tensors:
        _save_tensors(tensors, folder / weights_file, {"format": "pt", "tlcli_kind": kind})
    if labels is not None:
        _write_json(folder / LABELS_JSON, list(labels))
    if preprocessing is not None:
        _write_json(folder / PREPROCESSING_JSON, preprocessing)
    _write_json(folder / MODEL_JSON, {"kind": kind, "plugin": plugin, "format": FORMAT,
                                      "weights": weights_file if tensors else None,
                                      **({"num_classes": len(labels)} if labels is not None else {}), **meta})
    return folder


@dataclass
class ModelFiles:
    """A ``model/`` folder, checked: ``meta`` (model.json), ``labels``, ``preprocessing``."""

    path: Path
    meta: dict
    labels: list[str] = field(default_factory=list)
    preprocessing: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "")

    def tensors(self, name: str | None = None, framework: str = "pt") -> dict[str, Any]:
        """The tensors of ``name`` (default: the file model.json names) as torch tensors or NumPy arrays."""
        name = name or self.meta.get("weights") or "model.safetensors"
        return load_tensors(self.path / name, framework)


def model_dir_of(path: Path) -> Path:
    """A run folder's ``model/``, or ``path`` itself when it is a model folder."""
    path = Path(path)
    return path / "model" if (path / "model").is_dir() else path


def read_model(path: Path) -> ModelFiles:
    """The model of a run folder (or of a ``model/`` folder), with one-line errors for every way it can be
    missing or broken."""
    folder = model_dir_of(path)
    seeds = sorted(p.parent.name for p in Path(path).glob("seed-*/model")) if not (folder / MODEL_JSON).exists() else []
    if seeds:  # a --seeds run: one model per seed, none of its own
        raise UsageError(f"{path}: a --seeds run holds one model per seed ({', '.join(seeds[:5])}); pass one "
                         f"seed's folder, e.g. {Path(path) / seeds[0]}")
    meta = _read_json(folder / MODEL_JSON, f"{path}: no model/{MODEL_JSON}; pass a finished run folder "
                                            "(is the run still going, or did it stop before exporting?)")
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise UsageError(f"{folder / MODEL_JSON}: not a tlcli model description (no \"kind\"); re-export the run")
    labels = _read_json(folder / LABELS_JSON, None) if (folder / LABELS_JSON).exists() else []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise UsageError(f"{folder / LABELS_JSON}: expected a JSON list of label names")
    preprocessing = (_read_json(folder / PREPROCESSING_JSON, None)
                     if (folder / PREPROCESSING_JSON).exists() else {})
    if not isinstance(preprocessing, dict):
        raise UsageError(f"{folder / PREPROCESSING_JSON}: expected a JSON object; re-export the run")
    check_preprocessing(preprocessing, folder / PREPROCESSING_JSON)
    return ModelFiles(folder, meta, labels, preprocessing)


# A run folder is input too: an edited preprocessing.json must not make predict allocate 30 GB.
MAX_IMAGE_SIDE = 4096
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos", "random")


def check_preprocessing(pre: dict, where: Path) -> None:
    """Sizes within 1..MAX_IMAGE_SIDE, mean/std finite (std non-zero), a known interpolation; else one line."""
    def bad(what: str) -> UsageError:
        return UsageError(f"{where}: {what}; re-export the run (or fix the file)")

    def side(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_IMAGE_SIDE

    for key in ("resize", "crop"):
        if key in pre and not side(pre[key]):
            raise bad(f"{key} {pre[key]!r} is not a size from 1 to {MAX_IMAGE_SIDE}")
    if "size" in pre:
        size = pre["size"]
        if not (side(size) or (isinstance(size, list) and len(size) == 2 and all(side(s) for s in size))):
            raise bad(f"size {size!r} is not a size from 1 to {MAX_IMAGE_SIDE}")
    for key in ("mean", "std"):
        if key not in pre:
            continue
        values = pre[key]
        if not (isinstance(values, list) and len(values) in (1, 3) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 1e3
                for v in values)):
            raise bad(f"{key} {values!r} is not 1 or 3 finite numbers")
        if key == "std" and any(abs(v) < 1e-6 for v in values):
            raise bad(f"std {values!r} holds a zero (it divides every pixel)")
    if "interpolation" in pre and pre["interpolation"] not in INTERPOLATIONS:
        raise bad(f"interpolation {pre['interpolation']!r} is not one of {', '.join(INTERPOLATIONS[:-1])}")


def load_tensors(path: Path, framework: str = "pt") -> dict[str, Any]:
    """A safetensors file; a missing, truncated or corrupt file is a usage error naming it."""
    if not Path(path).is_file():
        raise UsageError(f"{path}: missing; the run's export is incomplete, re-run or re-export it")
    try:
        if framework == "np":
            from safetensors.numpy import load_file
        else:
            from safetensors.torch import load_file
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for corrupt headers and data
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"{path}: not a readable safetensors file ({first}); re-export the run") from None
    bad = first_nonfinite(tensors)
    if bad is not None:
        raise UsageError(f"{path}: the weights are not finite (NaN or inf in {bad}); this model cannot predict. "
                         "Train it again (a lower --lr, or --clip-grad)")
    return tensors


def first_nonfinite(tensors: dict[str, Any]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity (torch or NumPy), or None."""
    for name, value in tensors.items():
        if hasattr(value, "detach"):
            if value.is_floating_point() and not bool(value.detach().isfinite().all()):
                return name
        else:
            import numpy as np

            array = np.asarray(value)
            if array.dtype.kind in "fc" and not bool(np.isfinite(array).all()):
                return name
    return None


def _save_tensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str]) -> None:
    bad = first_nonfinite(tensors)
    if bad is not None:  # a NaN model would predict "score: null" for every input
        from tlcli.console.errors import JobFailed

        raise JobFailed(f"the trained weights are not finite (NaN or inf in {bad}); no model exported. Lower "
                        "--lr or pass --clip-grad, and start again")
    first = next(iter(tensors.values()))
    if hasattr(first, "detach"):
        from safetensors.torch import save

        data = save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=metadata)
    else:
        import numpy as np
        from safetensors.numpy import save

        data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    Path(path).write_bytes(sorted_metadata(data))


def sorted_metadata(data: bytes) -> bytes:
    """A safetensors file with its ``__metadata__`` keys in sorted order: the library writes them in a
    random (hash) order, so identical runs wrote different bytes. The header keeps its length (only the
    order of keys changes), so the tensor offsets stand."""
    size = int.from_bytes(data[:8], "little")
    header = data[8:8 + size]
    try:
        parsed = json.loads(header)
    except ValueError:
        return data
    if not isinstance(parsed.get("__metadata__"), dict):
        return data
    parsed["__metadata__"] = dict(sorted(parsed["__metadata__"].items()))
    text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > size or len(text) != len(header.rstrip(b" ")):
        return data
    return data[:8] + text.ljust(size, b" ") + data[8 + size:]


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")


def _read_json(path: Path, missing_message: str | None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(missing_message or f"{path}: missing") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: unreadable ({type(error).__name__}); re-export the run") from None
