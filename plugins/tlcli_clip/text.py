"""Prompt templates and the zero-shot head: one normalised text embedding per label, cached on disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tlcli.console.errors import UsageError
from tlcli.models.clip import ClipModel
from tlcli.runs.paths import atomic_write_bytes, cache_dir

SINGLE_TEMPLATE = "a photo of a {}."


def resolve_templates(value: str) -> list[str]:
    """``ensemble`` (the CLIP paper's 80 ImageNet templates), ``single``, or a file of ``{}`` lines."""
    if value == "ensemble":
        return [template("{}") for template in _openai_imagenet_templates()]
    if value == "single":
        return [SINGLE_TEMPLATE]
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"--templates {value!r}: expected ensemble, single, or a file with one {{}} template per line")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    wrong = [line for line in lines if "{}" not in line]
    if not lines or wrong:
        raise UsageError(f"--templates {value}: every line needs {{}} where the label goes"
                         + (f" (line {lines.index(wrong[0]) + 1}: {wrong[0]!r})" if wrong else " (the file is empty)"))
    return lines


def fill(template: str, label: str) -> str:
    return template.replace("{}", label)  # not str.format: a label may contain braces


def _openai_imagenet_templates() -> list:
    """open_clip's OPENAI_IMAGENET_TEMPLATES without `import open_clip` (4 s: it imports transformers).
    Its zero_shot_metadata.py imports nothing, so that one file is loaded on its own."""
    import importlib.util

    try:
        package = Path(importlib.util.find_spec("open_clip").origin).parent
        spec = importlib.util.spec_from_file_location("_tlcli_open_clip_templates", package / "zero_shot_metadata.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return list(module.OPENAI_IMAGENET_TEMPLATES)
    except Exception:  # a different open_clip layout: the normal (slow) import
        from open_clip import OPENAI_IMAGENET_TEMPLATES

        return list(OPENAI_IMAGENET_TEMPLATES)


def label_embeddings(clip: ClipModel, labels: list[str], templates: list[str], use_cache: bool = True) -> np.ndarray:
    """(num_labels, D) float32 normalised label embeddings: each label's template embeddings (normalised)
    averaged, then normalised again, as open_clip's build_zero_shot_classifier does. Cached per (model,
    labels, templates); a cache hit needs neither torch nor the model."""
    key = hashlib.sha256(json.dumps([clip.key, labels, templates]).encode()).hexdigest()[:32]
    path = cache_dir("text-embeddings") / f"{key}.safetensors"
    if use_cache and path.is_file():
        from safetensors.numpy import load_file

        try:
            return load_file(str(path))["head"]
        except Exception:  # torn or foreign file: compute again
            pass
    import torch.nn.functional as F

    texts = [fill(template, label) for label in labels for template in templates]
    embeddings = clip.encode_texts(texts).reshape(len(labels), len(templates), -1).mean(dim=1)
    head = F.normalize(embeddings, dim=-1).contiguous().numpy()
    if use_cache:
        from safetensors.numpy import save

        atomic_write_bytes(path, save({"head": head}, metadata={"labels": json.dumps(labels)}))
    return head


def build_zero_shot_head(clip: ClipModel, labels: list[str], templates: list[str], use_cache: bool = True):
    """``label_embeddings`` as a torch tensor."""
    import torch

    return torch.from_numpy(label_embeddings(clip, labels, templates, use_cache))


def zero_shot_probs(clip: ClipModel, features: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Softmax over labels of logit_scale * cos(image, label) (+ logit_bias), as open_clip computes it;
    NumPy float32 in and out."""
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    logits = np.float32(clip.logit_scale()) * (x @ np.asarray(head, dtype=np.float32).T)
    bias = clip.logit_bias()
    if bias is not None:
        logits = logits + np.float32(bias)
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
