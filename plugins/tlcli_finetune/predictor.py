"""Load a fine-tuned run's model/ folder for `tlcli predict` and `tlcli evaluate`."""

from __future__ import annotations

from pathlib import Path

import torch

from tlcli.runs.artifacts import read_model
from tlcli.console.errors import UsageError
from tlcli.models.vision import build_vision_model, logits_and_head_input
from tlcli_finetune.data import eval_transform


class ImageClassifierPredictor:
    modality = "image"

    def __init__(self, model, labels: list[str], preprocessing: dict, device: torch.device, head: str | None = None):
        self.model, self.labels, self.device = model.to(device).eval(), labels, device
        self.preprocessing = preprocessing
        self.transform = eval_transform(preprocessing)
        self.head = head  # the classifier's module name: its input is the penultimate features

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.model(batch.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu()

    def export_module(self):
        """For `tlcli export`: the network predict runs (pixels -> logits) and its preprocessing."""
        from tlcli.export.spec import image_exportable

        return image_exportable(self.model, self.labels, self.preprocessing)

    @torch.inference_mode()
    def predict_with_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, features = logits_and_head_input(self.model, self.head, batch.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu(), features.float().cpu()


def load_predictor(model_dir: Path, device: str = "cpu") -> ImageClassifierPredictor:
    from tlcli.engine.device import resolve_device

    files = read_model(model_dir)
    spec = files.meta.get("model")
    if not isinstance(spec, str) or not files.labels or not files.preprocessing:
        raise UsageError(f"{files.path}: incomplete image-classifier export (model name, labels.json or "
                         "preprocessing.json missing); re-run the fine-tuning")
    crop = files.preprocessing.get("crop")  # a ViT trained at another size is built for that size
    built = build_vision_model(spec, "none", num_classes=len(files.labels),
                               image_size=crop if isinstance(crop, int) else None)
    try:
        built.model.load_state_dict(files.tensors())
    except RuntimeError as error:
        raise UsageError(f"{files.path}: weights do not match {spec} ({str(error).splitlines()[0]})") from None
    return ImageClassifierPredictor(built.model, files.labels, files.preprocessing, resolve_device(device),
                                    head=built.head_names[0])
