"""Images for training: decoded once (bad files reported and skipped), kept in memory when they fit,
transformed per sample with randomness drawn only from the sample's seed. Shared by every plugin that
trains on image folders (finetune, pretrain, pseudolabel)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from tlcli.data.images import ItemProgress, load_image, load_images
from tlcli.data.sources import BadFiles, LabelledSample
from tlcli.console.output import info

MEMORY_BUDGET_BYTES = 3 * 2**30  # keep decoded images in RAM below this; decode each epoch above it

INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
                  "lanczos": Image.LANCZOS}


def eval_transform(pre: dict):
    """Resize the short side, centre-crop, normalise: what predict/evaluate use too."""
    from torchvision import transforms as T

    interpolation = T.InterpolationMode(pre.get("interpolation", "bilinear"))
    return T.Compose([
        T.Resize(pre["resize"], interpolation=interpolation),
        T.CenterCrop(pre["crop"]),
        T.ToTensor(),
        T.Normalize(pre["mean"], pre["std"]),
    ])


def train_transform(pre: dict, augment: str):
    from torchvision import transforms as T

    if augment == "none":
        return eval_transform(pre)
    interpolation = T.InterpolationMode(pre.get("interpolation", "bilinear"))
    steps = [T.RandomResizedCrop(pre["crop"], scale=(0.35, 1.0), interpolation=interpolation),
             T.RandomHorizontalFlip()]
    if augment == "strong":
        steps += [T.TrivialAugmentWide(interpolation=interpolation), T.ColorJitter(0.3, 0.3, 0.3)]
    steps += [T.ToTensor(), T.Normalize(pre["mean"], pre["std"])]
    if augment == "strong":
        steps.append(T.RandomErasing(p=0.25))
    return T.Compose(steps)


def _shrink(image: Image.Image, short_side: int, interpolation) -> Image.Image:
    """Resize so the short side is ``short_side`` (never enlarge): every later transform starts with such
    a resize, so caching this result loses nothing and saves decode + resize work each epoch."""
    width, height = image.size
    scale = short_side / min(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, interpolation)


UNLABELLED = -1  # the label index of an image without a (known) class


class DecodedImages:
    """The usable samples of a list, decoded once in parallel. Bad files are reported and left out.
    A sample whose label is not in ``classes`` (an unlabelled image) gets label ``UNLABELLED``."""

    def __init__(self, samples: list[LabelledSample], classes: list[str], pre: dict, bad: BadFiles,
                 workers: int | None = None, quiet: bool = False):
        interpolation = INTERPOLATIONS.get(pre.get("interpolation", "bilinear"), Image.BILINEAR)
        short_side = pre["resize"]
        self.paths: list[Path] = []
        self.labels: list[int] = []
        self.images: list[Image.Image] | None = []
        index_of = {c: i for i, c in enumerate(classes)}
        self._budget = MEMORY_BUDGET_BYTES
        progress = ItemProgress("decoding", len(samples), quiet)
        with progress:
            for done, (i, result) in enumerate(load_images([s.path for s in samples], workers=workers,
                                                           transform=lambda im: _shrink(im, short_side, interpolation))):
                progress.update(done + 1)
                self._keep(samples[i], result, index_of, bad)
        self.short_side, self.interpolation = short_side, interpolation

    def _keep(self, sample: LabelledSample, result, index_of: dict[str, int], bad: BadFiles) -> None:
        if isinstance(result, Exception):
            bad.add(result)
            return
        self.paths.append(sample.path)
        self.labels.append(index_of.get(sample.label, UNLABELLED))
        if self.images is not None:
            self._budget -= result.width * result.height * 3
            if self._budget < 0:
                info("images do not fit the in-memory cache; decoding them every epoch instead")
                self.images = None
            else:
                self.images.append(result)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image.Image:
        if self.images is not None:
            return self.images[index]
        return _shrink(load_image(self.paths[index]), self.short_side, self.interpolation)


class TrainImages(torch.utils.data.Dataset):
    """``dataset[(index, seed)] -> (tensor, label)``; augmentation randomness comes only from ``seed``."""

    def __init__(self, decoded: DecodedImages, transform):
        self.decoded, self.transform = decoded, transform

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, key):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tensor = self.transform(self.decoded.image(index))
        return tensor, self.decoded.labels[index]


class EvalImages(torch.utils.data.Dataset):
    def __init__(self, decoded: DecodedImages, transform):
        self.decoded, self.transform = decoded, transform

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, index: int):
        return self.transform(self.decoded.image(index)), self.decoded.labels[index]

