"""Hugging Face datasets made on the spot for the table-input tests: from class folders, as parquet, arrow,
save_to_disk folders, and in the local datasets cache's own layout (what `load_dataset(NAME)` leaves there),
so `hf:NAME` is tested without a network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

BROKEN_PNG = b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4


def folder_rows(root: Path) -> tuple[list[bytes], list[str]]:
    """(image bytes, class name) of every image under ``root/<class>/``, sorted by class then file name:
    the order the class-folder reader gives."""
    images, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.iterdir()):
            images.append(file.read_bytes())
            labels.append(folder.name)
    return images, labels


def image_dataset(images: list[bytes | None], labels: list, *, image_column: str = "image",
                  label_names: list[str] | None = None, label_column: str = "label"):
    """A datasets.Dataset with an Image column (bytes) and a ClassLabel column (``label_names`` given: labels
    may be names or ids) or a string column (no names)."""
    from datasets import ClassLabel, Dataset, Features, Image, Value

    if label_names is not None:
        labels = [label_names.index(x) if isinstance(x, str) else x for x in labels]
        label_feature = ClassLabel(names=label_names)
    else:
        label_feature = Value("string")
    column = [None if data is None else {"bytes": data, "path": None} for data in images]
    return Dataset.from_dict({image_column: column, label_column: labels},
                             features=Features({image_column: Image(), label_column: label_feature}))


def text_dataset(texts: list[str], labels: list, label_names: list[str] | None = None,
                 text_column: str = "text", label_column: str = "label"):
    from datasets import ClassLabel, Dataset, Features, Value

    if label_names is not None:
        labels = [label_names.index(x) if isinstance(x, str) else x for x in labels]
    feature = ClassLabel(names=label_names) if label_names is not None else Value("string")
    return Dataset.from_dict({text_column: texts, label_column: labels},
                             features=Features({text_column: Value("string"), label_column: feature}))


def put_in_hf_cache(splits: dict, cache: Path, name: str) -> Path:
    """Write ``{split: Dataset}`` into the datasets cache at ``cache`` as ``load_dataset(name)`` leaves a
    downloaded dataset there (``<ns>___<name>/default/0.0.0/<hash>/<name>-<split>.arrow`` and
    ``dataset_info.json``), so the offline cache builder finds it."""
    short = name.split("/")[-1]
    folder = cache / "___".join(name.split("/")) / "default" / "0.0.0" / "0123456789abcdef"
    folder.mkdir(parents=True)
    info = None
    split_infos = {}
    for split, dataset in splits.items():
        saved = cache / f".tmp-{split}"
        dataset.save_to_disk(str(saved))
        shutil.copy(next(saved.glob("data-*.arrow")), folder / f"{short}-{split}.arrow")
        info = json.loads((saved / "dataset_info.json").read_text())
        split_infos[split] = {"name": split, "num_bytes": 0, "num_examples": len(dataset), "dataset_name": short}
        shutil.rmtree(saved)
    info.update({"builder_name": "parquet", "dataset_name": short, "config_name": "default",
                 "version": {"version_str": "0.0.0", "major": 0, "minor": 0, "patch": 0}, "splits": split_infos})
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder
