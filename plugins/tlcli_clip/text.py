"""Prompt templates and the zero-shot head: one normalised text embedding per label, cached on disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from tlcli.errors import UsageError
from tlcli.models.clip import ClipModel
from tlcli.paths import atomic_write_bytes, cache_dir

SINGLE_TEMPLATE = "a photo of a {}."


def resolve_templates(value: str) -> list[str]:
    """``ensemble`` (the CLIP paper's 80 ImageNet templates), ``single``, or a file of ``{}`` lines."""
    if value == "ensemble":
        from open_clip import OPENAI_IMAGENET_TEMPLATES

        return [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]
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


def build_zero_shot_head(clip: ClipModel, labels: list[str], templates: list[str], use_cache: bool = True) -> torch.Tensor:
    """(num_labels, D) normalised label embeddings: each label's template embeddings (normalised) averaged,
    then normalised again, as open_clip's build_zero_shot_classifier does. Cached per (model, labels,
    templates)."""
    key = hashlib.sha256(json.dumps([clip.key, labels, templates]).encode()).hexdigest()[:32]
    path = cache_dir("text-embeddings") / f"{key}.safetensors"
    if use_cache and path.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(path))["head"]
        except Exception:  # torn or foreign file: compute again
            pass
    texts = [fill(template, label) for label in labels for template in templates]
    embeddings = clip.encode_texts(texts).reshape(len(labels), len(templates), -1).mean(dim=1)
    head = F.normalize(embeddings, dim=-1).contiguous()
    if use_cache:
        from safetensors.torch import save

        atomic_write_bytes(path, save({"head": head}, metadata={"labels": json.dumps(labels)}))
    return head


def zero_shot_probs(clip: ClipModel, features: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """Softmax over labels of logit_scale * cos(image, label) (+ logit_bias), as open_clip computes it."""
    logits = clip.logit_scale() * F.normalize(features.float(), dim=-1) @ head.float().T
    bias = clip.logit_bias()
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1)
