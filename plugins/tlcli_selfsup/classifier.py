"""A plain image classifier Task (cross-entropy, a new or inherited head) for pseudo-labelling rounds, and
the helpers to predict with one. Exports the layout of kind ``image-classifier``, so `tlcli predict` and
`tlcli evaluate` read the result like a fine-tuned run."""

from __future__ import annotations

from pathlib import Path

import torch

from tlcli.data.decoded import EvalImages, TrainImages, eval_transform, train_transform
from tlcli.engine.task import ClassifierTask as CrossEntropyTask
from tlcli.models.vision import build_vision_model, load_backbone_weights

MODEL_KIND = "image-classifier"


class ImageSet:
    """Images and labels drawn from decoded sets: ``parts`` are ``(decoded, indices, labels)``. Quacks like
    DecodedImages for TrainImages/EvalImages (``image(i)``, ``labels``, ``len``)."""

    def __init__(self, parts: list[tuple]):
        self._items = [(decoded, int(i)) for decoded, indices, _ in parts for i in indices]
        self.labels = [int(label) for _, _, labels in parts for label in labels]

    def __len__(self) -> int:
        return len(self._items)

    def image(self, index: int):
        decoded, i = self._items[index]
        return decoded.image(i)


def whole(decoded) -> tuple:
    """A decoded set as one ImageSet part, with its own labels."""
    return decoded, range(len(decoded)), decoded.labels


class ClassifierTask(CrossEntropyTask):
    """``start``: the full state dict of a classifier with these classes (the previous round), or a
    backbone's state dict (a pretrain run; the head is new)."""

    def __init__(self, cfg, spec: str, classes: list[str], train: ImageSet, val, preprocessing: dict,
                 start: dict, start_is_backbone: bool):
        self.cfg, self.spec, self.classes, self.preprocessing = cfg, spec, classes, preprocessing
        self._train, self._val = train, val
        self._start, self._start_is_backbone = start, start_is_backbone
        self.exported: dict | None = None

    def describe(self) -> dict:
        return {"model": self.spec, "classes": self.classes}

    def build_model(self):
        built = build_vision_model(self.spec, "none", num_classes=len(self.classes),
                                   image_size=self.preprocessing.get("crop"))
        if self._start_is_backbone:
            load_backbone_weights(built.model, self._start, built.head_names)
        else:
            built.model.load_state_dict(self._start)
        return built.model

    def train_dataset(self):
        return TrainImages(self._train, train_transform(self.preprocessing, self.cfg.augment))

    def val_dataset(self):
        return None if self._val is None else EvalImages(self._val, eval_transform(self.preprocessing))

    def collate(self, items):
        return torch.stack([item[0] for item in items]), torch.tensor([item[1] for item in items], dtype=torch.long)

    def export(self, model, run_dir: Path, result) -> None:
        self.exported = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        write_classifier(Path(run_dir) / "model", self.exported, self.classes, self.preprocessing, self.spec)


def write_classifier(folder: Path, state: dict, classes: list[str], preprocessing: dict, spec: str) -> None:
    import os
    import shutil

    from tlcli.runs.artifacts import write_model

    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(tmp, kind=MODEL_KIND, plugin="selfsup", tensors=state, labels=classes, preprocessing=preprocessing,
                model=spec)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


@torch.no_grad()
def predict_probabilities(spec: str, classes: list[str], state: dict, dataset, device,
                          batch_size: int = 128) -> torch.Tensor:
    """Softmax outputs ``(N, classes)`` of the classifier ``state`` on an unaugmented dataset."""
    model = build_vision_model(spec, "none", num_classes=len(classes)).model
    model.load_state_dict(state)
    model.to(device).eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        images = torch.stack([dataset[i][0] for i in range(start, min(len(dataset), start + batch_size))])
        out.append(torch.softmax(model(images.to(device)).float(), dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(classes))
