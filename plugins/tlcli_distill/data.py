"""Images for distillation: decoded once into memory (bad files reported and skipped), viewed per sample
with randomness drawn only from the sample's seed. Each training sample yields the student's tensor and,
for an augmented view, the teacher's tensor of the same view; a clean view's teacher logits come from the
teacher cache instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from tlcli.data.bad_files import BadFiles
from tlcli.data.images import load_images
from tlcli_distill.loss import UNLABELLED


@dataclass
class Decoded:
    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # class index, or UNLABELLED
    images: list[Image.Image] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> int:
        return sum(label != UNLABELLED for label in self.labels)


def _shrink(image: Image.Image, short_side: int) -> Image.Image:
    """Resize so the short side is ``short_side`` (never enlarge): both models' transforms start by
    resizing further, so nothing they see is lost, and memory stays small."""
    width, height = image.size
    scale = short_side / min(width, height)
    if scale >= 1:
        return image
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)


def decode(items: list[tuple[Path, int]], bad: BadFiles, short_side: int, workers: int | None) -> Decoded:
    out = Decoded()
    for index, result in load_images([path for path, _ in items], workers=workers,
                                     transform=lambda image: _shrink(image, short_side)):
        if isinstance(result, Exception):
            bad.add(result)
            continue
        out.paths.append(items[index][0])
        out.labels.append(items[index][1])
        out.images.append(result)
    return out


def eval_transform(pre: dict):
    """Resize the short side, centre-crop, normalise: the student's view, and what `tlcli predict` uses
    for an image-classifier export (the fine-tuning plugin's transform, same settings)."""
    from torchvision import transforms as T

    interpolation = T.InterpolationMode(pre.get("interpolation", "bilinear"))
    return T.Compose([T.Resize(pre["resize"], interpolation=interpolation), T.CenterCrop(pre["crop"]),
                      T.ToTensor(), T.Normalize(pre["mean"], pre["std"])])


def augment_view(augment: str):
    """PIL -> PIL at the image's own size (both models then apply their own preprocessing), or None."""
    if augment == "none":
        return None
    from torchvision import transforms as T

    def view(image: Image.Image) -> Image.Image:
        steps = [T.RandomResizedCrop((image.height, image.width), scale=(0.35, 1.0)), T.RandomHorizontalFlip()]
        if augment == "strong":
            steps.append(T.TrivialAugmentWide())
        return T.Compose(steps)(image)

    return view


class TrainViews(torch.utils.data.Dataset):
    """``[(index, seed)] -> (student tensor, teacher tensor | None, teacher logits | None, teacher features |
    None, label)``: a clean view carries the cached teacher outputs (features with --feature-loss), an
    augmented one the teacher's own tensor of the view."""

    def __init__(self, decoded: Decoded, student_transform, teacher_transform, view, logits: torch.Tensor | None,
                 features: torch.Tensor | None = None):
        self.decoded, self.student_transform, self.teacher_transform = decoded, student_transform, teacher_transform
        self.view, self.logits, self.features = view, logits, features

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, key):
        index, seed = key
        image = self.decoded.images[index]
        label = self.decoded.labels[index]
        if self.view is None:  # the clean view: the teacher's outputs on it are cached
            features = None if self.features is None else self.features[index]
            return self.student_transform(image), None, self.logits[index], features, label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image = self.view(image)
        return self.student_transform(image), self.teacher_transform(image), None, None, label


class ValViews(torch.utils.data.Dataset):
    """``[index] -> (student tensor, teacher logits, label)``."""

    def __init__(self, decoded: Decoded, student_transform, logits: torch.Tensor):
        self.decoded, self.student_transform, self.logits = decoded, student_transform, logits

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, index: int):
        return self.student_transform(self.decoded.images[index]), self.logits[index], self.decoded.labels[index]


def collate_train(items):
    def stacked(column: int):
        return None if items[0][column] is None else torch.stack([item[column] for item in items])

    labels = torch.tensor([item[4] for item in items], dtype=torch.long)
    return stacked(0), stacked(1), stacked(2), stacked(3), labels


def collate_val(items):
    return (torch.stack([item[0] for item in items]), torch.stack([item[1] for item in items]),
            torch.tensor([item[2] for item in items], dtype=torch.long))
