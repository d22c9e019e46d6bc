"""Reading this plugin's inputs: unlabelled paths, labelled folders, and their preprocessing."""

from __future__ import annotations

from pathlib import Path

from tlcli.data.bad_files import BadFiles
from tlcli.data.decoded import DecodedImages
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


def unlabelled_images(paths: list[str], pre: dict, bad: BadFiles, workers: int | None) -> DecodedImages:
    """Every image the paths name (files, folders walked recursively; class folders' labels ignored)."""
    found, skipped = expand_paths(paths)
    bad.extend(skipped)
    if not found:
        raise UsageError(f"no images in {', '.join(display_path(p) for p in paths)}; pass image files or folders")
    return DecodedImages([LabelledSample(p, "") for p in found], [], pre, bad, workers)


def labelled_images(path: str | Path, classes: list[str] | None, pre: dict, bad: BadFiles,
                    workers: int | None) -> tuple[DecodedImages, list[str]]:
    """A labelled folder (or CSV), decoded; ``classes`` fixes the label order (default: its own, sorted)."""
    samples = load_labelled(Path(path), bad_files=bad)
    classes = classes if classes is not None else sorted({s.label for s in samples})
    return DecodedImages(samples, classes, pre, bad, workers), classes
