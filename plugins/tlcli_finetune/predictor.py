"""Load a fine-tuned run's model/ folder for `tlcli predict` and `tlcli evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tlcli.errors import UsageError
from tlcli.models.vision import build_vision_model
from tlcli_finetune.data import eval_transform


class ImageClassifierPredictor:
    def __init__(self, model, labels: list[str], preprocessing: dict, device: torch.device):
        self.model, self.labels, self.device = model.to(device).eval(), labels, device
        self.transform = eval_transform(preprocessing)

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.model(batch.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu()


def load_predictor(model_dir: Path, device: str = "cpu") -> ImageClassifierPredictor:
    from safetensors.torch import load_file

    from tlcli.engine.device import resolve_device

    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    preprocessing = json.loads((model_dir / "preprocessing.json").read_text(encoding="utf-8"))
    built = build_vision_model(meta["model"], "none", num_classes=len(labels))
    try:
        built.model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
    except RuntimeError as error:
        raise UsageError(f"{model_dir}: weights do not match {meta['model']} ({str(error).splitlines()[0]})") from None
    return ImageClassifierPredictor(built.model, labels, preprocessing, resolve_device(device))
