"""What a predictor hands ``tlcli export``, and the metadata every exported file carries.

A predictor that can be exported has ``export_module() -> Exportable`` (see ``tlcli.plugin``): the same
network ``tlcli predict`` runs, in float32 on the CPU, taking tensors and returning logits. Everything
outside the graph -- image resizing and normalisation, tokenisation -- is described by ``preprocessing``
and written beside the graph, so that a deployment (or ``tlcli predict FILE``) can apply it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tlcli.console.errors import UsageError

EXPORT_FORMAT = 1  # the metadata layout below; a reader refuses a newer one
MARKER = "tlcli_export"  # the key that says tlcli wrote a file (ONNX metadata, TorchScript extra file, JSON)
OUTPUT_NAME = "logits"
IMAGE_INPUT = "pixels"
TEXT_INPUTS = ("input_ids", "attention_mask")
TOKENIZER_FILE = "tokenizer.json"  # the one file the ``tokenizers`` library needs, inside FILE.tokenizer/
# Image preprocessing keys ``tlcli predict`` applies (tlcli.data.decoded.eval_transform), as in model/.
IMAGE_KEYS = ("resize", "crop", "mean", "std", "interpolation")
# Texts tokenised for the example input and the export-time check: short and long, so padding is exercised.
SAMPLE_TEXTS = ("An example sentence.", "A second, rather longer example sentence with a few more words in it.",
                "Three.")


@dataclass
class Exportable:
    """A trained classifier as one graph: ``module(*example)`` -> logits (N, len(labels)).

    module: a torch ``nn.Module`` in eval mode, float32, on the CPU; what ``tlcli predict`` runs (the
        probabilities are ``softmax(logits)``).
    example: example inputs, a batch of one (the graph's input shapes come from them).
    input_names: ``("pixels",)`` for images (N, 3, H, W) float32; ``("input_ids", "attention_mask")`` for
        texts (N, L) int64.
    labels: class names in output order.
    preprocessing: images: ``resize`` (short side), ``crop``, ``mean``, ``std``, ``interpolation``; texts:
        ``max_length`` (tokens, special tokens included), ``pad_id``.
    modality: ``"image"`` or ``"text"``.
    tokenizer_files: texts: file name -> bytes (``tokenizer.json`` at least), written to ``FILE.tokenizer/``.
    source: what was exported (``kind``, ``plugin``, ``model``), for the metadata.
    """

    module: Any
    example: tuple
    input_names: tuple[str, ...]
    labels: list[str]
    preprocessing: dict
    modality: str = "image"
    tokenizer_files: dict[str, bytes] = field(default_factory=dict)
    source: dict = field(default_factory=dict)


def image_exportable(module, labels: list[str], preprocessing: dict, source: dict | None = None) -> Exportable:
    """An image classifier taking (N, 3, crop, crop) normalised pixels."""
    import torch

    pre = {key: preprocessing[key] for key in IMAGE_KEYS if key in preprocessing}
    missing = [key for key in ("resize", "crop", "mean", "std") if key not in pre]
    if missing:
        raise UsageError(f"the model's preprocessing lacks {', '.join(missing)}; re-export the run")
    crop = int(pre["crop"])
    generator = torch.Generator().manual_seed(0)
    example = (torch.randn(1, 3, crop, crop, generator=generator),)
    return Exportable(_for_export(module), example, (IMAGE_INPUT,), list(labels), pre, "image", {}, source or {})


def text_exportable(module, labels: list[str], tokenizer_files: dict[str, bytes], max_length: int, pad_id: int,
                    source: dict | None = None) -> Exportable:
    """A text classifier taking right-padded token ids and their mask, tokenised by ``tokenizer.json``."""
    if TOKENIZER_FILE not in tokenizer_files:
        raise UsageError(f"the model's tokenizer has no {TOKENIZER_FILE} (a fast tokenizer); it cannot be exported")
    pre = {"max_length": int(max_length), "pad_id": int(pad_id), "tokenizer": TOKENIZER_FILE,
           "add_special_tokens": True, "truncation": "longest_first", "padding": "right, to the longest text"}
    tokenizer = load_tokenizer(tokenizer_files[TOKENIZER_FILE].decode("utf-8"), pre["max_length"])
    tokenizer_files = {**tokenizer_files, TOKENIZER_FILE: _deployable(tokenizer, pre["pad_id"])}
    ids, mask = pad_batch(tokenizer, [SAMPLE_TEXTS[0]], pre["pad_id"])
    import torch

    example = (torch.from_numpy(ids), torch.from_numpy(mask))
    return Exportable(_for_export(module), example, TEXT_INPUTS, list(labels), pre, "text", dict(tokenizer_files),
                      source or {})


def _deployable(tokenizer, pad_id: int) -> bytes:
    """tokenizer.json set up as the graph wants its input, so that ``Tokenizer.from_file`` alone does it:
    truncation to max_length (a model folder's file may truncate elsewhere: MiniLM's says 128, its
    encoder reads 256) and padding to the longest text of a batch (its file pads every text to 128)."""
    import copy

    ready = copy.deepcopy(tokenizer)
    ready.enable_padding(direction="right", pad_id=pad_id, pad_token=ready.id_to_token(pad_id) or "[PAD]")
    return ready.to_str().encode("utf-8")


def _for_export(module):
    module = module.to("cpu").float().eval()
    module.requires_grad_(False)
    return module


def load_tokenizer(text: str, max_length: int):
    """A ``tokenizers`` tokenizer from tokenizer.json's text: truncating to ``max_length``, never padding
    (batches are padded by :func:`pad_batch`), as the Hugging Face tokenizer called with
    ``truncation=True, max_length=...`` does."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(text)
    tokenizer.no_padding()
    tokenizer.enable_truncation(int(max_length))
    return tokenizer


def pad_batch(tokenizer, texts: list[str], pad_id: int):
    """(input_ids, attention_mask) int64 NumPy arrays (N, longest), right-padded with ``pad_id``."""
    import numpy as np

    rows = [encoding.ids for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=True)]
    width = max(1, max(len(row) for row in rows))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
    return ids, mask


def metadata(exportable: Exportable, fmt: str, dynamic_batch: bool, **extra: Any) -> dict:
    """What the file says about itself (ONNX metadata_props, TorchScript extra file, FILE.json alike)."""
    from tlcli import __version__

    batch: Any = "batch" if dynamic_batch else 1
    inputs = []
    for name, tensor in zip(exportable.input_names, exportable.example):
        shape: list[Any] = [batch, *tensor.shape[1:]]
        if exportable.modality == "text":
            shape[1] = "sequence"
        inputs.append({"name": name, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape})
    return {
        MARKER: EXPORT_FORMAT, "format": fmt, "modality": exportable.modality, "labels": exportable.labels,
        "inputs": inputs, "output": {"name": OUTPUT_NAME, "shape": [batch, len(exportable.labels)],
                                     "meaning": "logits; softmax gives the class probabilities"},
        "dynamic_batch": bool(dynamic_batch), "preprocessing": exportable.preprocessing,
        "source": exportable.source, "tlcli_version": __version__, **extra,
    }


def onnx_properties(meta: dict) -> dict[str, str]:
    """``meta`` as ONNX metadata_props: one string each, JSON for anything but a string."""
    return {key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            for key, value in meta.items()}


def from_onnx_properties(props: dict[str, str], where: str) -> dict:
    """The metadata back from ONNX metadata_props (``onnx_properties`` reversed), checked."""
    meta: dict[str, Any] = {}
    for key, value in props.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    return checked(meta, where)


def checked(meta: Any, where: str) -> dict:
    """Metadata a file carries, checked before anything is run on it: one line naming what is wrong."""
    from tlcli.runs.artifacts import check_preprocessing

    def bad(what: str) -> UsageError:
        return UsageError(f"{where}: {what}; export it again with `tlcli export RUN_DIR`")

    if not isinstance(meta, dict) or MARKER not in meta:
        raise UsageError(f"{where}: not a file `tlcli export` wrote (no {MARKER} metadata); pass a run folder or "
                         "a file tlcli exported")
    if meta[MARKER] != EXPORT_FORMAT:
        raise bad(f"export format {meta[MARKER]!r}, this tlcli reads {EXPORT_FORMAT}")
    labels = meta.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise bad("its labels are missing or not a list of names")
    pre = meta.get("preprocessing")
    if not isinstance(pre, dict):
        raise bad("its preprocessing is missing")
    modality = meta.get("modality")
    if modality == "image":
        if not all(key in pre for key in ("resize", "crop", "mean", "std")):
            raise bad("its image preprocessing lacks resize, crop, mean or std")
        check_preprocessing(pre, where)
    elif modality == "text":
        if not (isinstance(pre.get("max_length"), int) and 1 <= pre["max_length"] <= 1_000_000
                and isinstance(pre.get("pad_id"), int) and pre["pad_id"] >= 0):
            raise bad("its text preprocessing lacks max_length or pad_id")
    else:
        raise bad(f"modality {modality!r} is neither image nor text")
    if not isinstance(meta.get("dynamic_batch"), bool):
        raise bad("it does not say whether its batch size is fixed")
    return meta
