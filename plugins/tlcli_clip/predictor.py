"""Load a probe or CoOp run's model/ folder for `tlcli predict` and `tlcli evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from tlcli.errors import UsageError
from tlcli.models.clip import ClipModel, load_clip


class ClipHeadPredictor:
    """CLIP image tower + a linear head on normalised features (``logit_scale`` folded into the head)."""

    def __init__(self, clip: ClipModel, labels: list[str], weight: torch.Tensor, bias: torch.Tensor):
        self.clip, self.labels = clip, labels
        self.weight, self.bias = weight.float(), bias.float()
        self.transform = clip.preprocess

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.clip.encode_images(batch), dim=-1)
        return (features @ self.weight.T + self.bias).softmax(dim=-1)


def _read(model_dir: Path, kind: str) -> tuple[dict, list[str]]:
    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    if meta.get("kind") != kind:
        raise UsageError(f"{model_dir}: a {meta.get('kind')!r} model, expected {kind!r}")
    labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    return meta, labels


def _load_clip(meta: dict, device: str) -> ClipModel:
    try:
        return load_clip(meta["model"], meta.get("pretrained"), device, meta.get("precision", "auto"))
    except UsageError as error:
        if "--precision" not in str(error):
            raise
        return load_clip(meta["model"], meta.get("pretrained"), device, "auto")  # e.g. an fp16 run on a CPU


def load_probe_predictor(model_dir: Path, device: str = "cpu") -> ClipHeadPredictor:
    from safetensors.torch import load_file

    meta, labels = _read(Path(model_dir), "clip-probe")
    head = load_file(str(Path(model_dir) / "head.safetensors"))
    return ClipHeadPredictor(_load_clip(meta, device), labels, head["weight"], head["bias"])


def load_coop_predictor(model_dir: Path, device: str = "cpu") -> ClipHeadPredictor:
    from tlcli_clip.coop import load_prompt_run

    run = load_prompt_run(Path(model_dir))
    clip = _load_clip(run.meta, device)
    head = run.head(clip, run.labels)
    weight = clip.logit_scale() * head
    bias = torch.full((len(run.labels),), clip.logit_bias() or 0.0)
    return ClipHeadPredictor(clip, run.labels, weight, bias)
