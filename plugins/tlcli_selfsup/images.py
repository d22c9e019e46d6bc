"""Reading this plugin's inputs: unlabelled paths, labelled folders, and their preprocessing."""

from __future__ import annotations

from pathlib import Path

from tlcli.data.bad_files import BadFiles
from tlcli.data.decoded import DecodedImages
from tlcli.data.labelled import class_names_of
from tlcli.data.sources import LabelledSample, expand_paths, load_labelled
from tlcli.console.errors import UsageError
from tlcli.models.vision import preprocessing_of
from tlcli.console.output import display_path


def preprocessing_for(spec: str, pretrained: str, image_size: int | None) -> dict:
    """The model's preprocessing, with ``--image-size`` as the crop (the resize keeps the library's ratio)."""
    pre = dict(preprocessing_of(spec, pretrained))
    if image_size:
        pre["resize"] = max(image_size, round(image_size * pre["resize"] / pre["crop"]))
        pre["crop"] = image_size
    return pre


def unlabelled_images(paths: list[str], pre: dict, bad: BadFiles, workers: int | None,
                      columns=None) -> DecodedImages:
    """Every image the paths name (files, folders walked recursively, tables; labels ignored)."""
    found, skipped = expand_paths(paths, columns=columns)
    bad.extend(skipped)
    if not found:
        raise UsageError(f"no images in {', '.join(display_path(p) for p in paths)}; pass image files or folders")
    return DecodedImages([LabelledSample(p, "") for p in found], [], pre, bad, workers)


def labelled_images(path: str | Path, classes: list[str] | None, pre: dict, bad: BadFiles,
                    workers: int | None, columns=None) -> tuple[DecodedImages, list[str]]:
    """Labelled images (class folders, a CSV, a table), decoded; ``classes`` fixes the label order (default:
    its own, see class_names_of)."""
    samples = load_labelled(path, bad_files=bad, columns=columns)
    classes = classes if classes is not None else class_names_of(samples)
    return DecodedImages(samples, classes, pre, bad, workers), classes
