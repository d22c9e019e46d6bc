"""Labelled image data: class folders, a CSV manifest or a table (tlcli/data/tables.py), and a seeded
stratified split."""

from __future__ import annotations

import csv
import math
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence, TypeVar

from tlcli.data.bad_files import BadFiles
from tlcli.data.common import IMAGE_EXTENSIONS, warn_verbatim
from tlcli.data.walk import walk_image_files
from tlcli.console.errors import UsageError
from tlcli.console.output import display_path

# A first manifest row is a header when its cells name these columns (then their order may differ and
# other columns are ignored). Without a header the columns are path,label.
_PATH_COLUMNS = ("path", "file", "filename", "filepath", "file_path", "image", "image_path")
_LABEL_COLUMNS = ("label", "class", "class_name", "target", "category")

_LAYOUT_HELP = ("DATA/<class>/<image>, one subfolder per class, a CSV manifest with rows path,label, a .parquet/.arrow "
                "file, a datasets.save_to_disk folder or hf:NAME (see docs/data.md)")


@dataclass(frozen=True)
class LabelledSample:
    path: Path
    label: str
    # The label's index in the data's own class list (a dataset's ClassLabel), where it has one: the classes
    # then keep that order (see class_names_of) instead of the sorted names.
    class_index: int | None = field(default=None, compare=False)


_Sample = TypeVar("_Sample", bound=LabelledSample)


def load_labelled(data: os.PathLike | str, *, bad_files: BadFiles | None = None, columns=None,
                  default_split: str = "train", labels: str = "required") -> list[LabelledSample]:
    """The samples of ``data``: a folder of class folders, a ``.csv`` manifest, or a table (a ``.parquet`` or
    ``.arrow`` file, a ``save_to_disk`` folder, ``hf:NAME``; ``default_split`` of a dataset dictionary unless
    DATA names one); ``UsageError`` if none of them. ``columns`` (``tlcli.data.tables.Columns``): the columns
    a user named; ``labels``: a table's rows without a label are left out (``"required"``) or kept with the
    label ``""`` (``"optional"``)."""
    from tlcli.data import tables

    if tables.is_table(data):
        where, rows = tables.read_image_rows(data, columns, bad_files, default_split, labels)
        samples = [LabelledSample(path, label, class_index) for path, label, class_index in rows]
        return strip_labels(without_repeats(samples, where), where)
    data = Path(os.fsdecode(data))
    if data.is_dir():
        return scan_class_folders(data, bad_files=bad_files)
    if data.is_file() and data.suffix.lower() == ".csv":
        return read_manifest(data, columns=columns)
    if not data.exists():
        raise UsageError(f"{display_path(data)}: no such file or folder; expected {_LAYOUT_HELP}")
    raise UsageError(f"{display_path(data)} is no folder, .csv, .parquet or .arrow file; expected {_LAYOUT_HELP}")


def scan_class_folders(
    root: os.PathLike | str,
    *,
    bad_files: BadFiles | None = None,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
) -> list[LabelledSample]:
    """One sample per image under ``root/<class>/`` (nested folders included), labelled by ``<class>``.

    Sorted by class, then path. Entries the walk had to skip (dangling links, links leaving ``root``)
    go to ``bad_files`` (a fresh one that only prints them, if not given). A class folder without images
    is left out with a warning. ``UsageError``, naming the expected layout, when there are no class
    folders or no images in them.
    """
    root = Path(os.fsdecode(root))
    if not root.is_dir():
        raise UsageError(f"{display_path(root)} is not a folder; expected {_LAYOUT_HELP}")
    files, skipped = walk_image_files(root, extensions=extensions)
    (bad_files if bad_files is not None else BadFiles()).extend(skipped)

    samples: list[LabelledSample] = []
    loose: list[Path] = []
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) == 1:
            loose.append(path)
        else:
            samples.append(LabelledSample(path, parts[0]))
    samples = strip_labels(samples, display_path(root))
    for label in {s.label for s in samples}:
        if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in label):
            raise UsageError(f"{display_path(root / label)}: a class folder whose name holds a line break or other "
                             "control character; rename it (labels are one line of text)")

    class_folders = _class_folder_names(root)
    if not class_folders and not samples:
        found = f"{len(loose)} images but no class subfolders" if loose else "no class subfolders"
        raise UsageError(f"{display_path(root)} has {found}; expected {_LAYOUT_HELP}")
    if not samples:
        names = ", ".join(display_path(name) for name in class_folders[:5])
        raise UsageError(
            f"{display_path(root)}: the class folders ({names}{', ...' if len(class_folders) > 5 else ''}) "
            f"hold no images (looked for {', '.join(sorted(extensions))})"
        )
    if loose:
        where = display_path(root)
        warn_verbatim(f"{len(loose)} images directly in {where} ignored: they are in no class folder")
    labels = {sample.label for sample in samples}
    for name in class_folders:
        if name.strip() not in labels:
            folder = display_path(root / name)
            warn_verbatim(f"class folder {folder} has no images; class {display_path(name)} left out")
    return samples


def read_manifest(csv_path: os.PathLike | str, columns=None) -> list[LabelledSample]:
    """The rows of a CSV manifest ``path,label`` (header optional), in file order.

    Relative paths are resolved against the CSV's folder, so a manifest travels with its images. Files
    are not opened here: a missing one is reported when loaded, like any bad file. ``UsageError`` with
    the line number for a malformed row, and for a manifest with no rows. ``columns``
    (``tlcli.data.tables.Columns``): an image or label column named by the user, which the first row (a
    header) must then have.
    """
    named = (getattr(columns, "image", None), getattr(columns, "label", None))
    csv_path = Path(os.fsdecode(csv_path))
    base = csv_path.parent
    samples: list[LabelledSample] = []
    try:
        # surrogateescape: a non-UTF-8 file name in the manifest still names the same file.
        with open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            reader = csv.reader(handle)
            columns: tuple[int, int] | None = None  # from the header; None: exactly path,label
            for row in reader:
                line = reader.line_num
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                if not samples and columns is None and any(named):
                    columns = _named_columns(csv_path, cells, named)
                    continue
                if not samples and columns is None and (header := _header_columns(cells)) is not None:
                    columns = header
                    continue
                if not samples and columns is None and _unknown_header(cells, base):
                    warn_verbatim(f"{display_path(csv_path)}:{line}: first row {display_path(','.join(cells))} "
                                  "taken as a header (its path is no image file); columns read as path,label")
                    columns = (0, 1)
                    continue
                sample = _manifest_row(csv_path, line, cells, columns, base)
                raw = row[(columns or (0, 1))[1]]
                _check_label_text(csv_path, line, raw)
                samples.append(LabelledSample(sample.path, raw) if raw != sample.label else sample)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise UsageError(f"cannot read manifest {display_path(csv_path)}: {reason}") from error
    except csv.Error as error:
        raise UsageError(f"{display_path(csv_path)}:{reader.line_num}: not valid CSV ({error})") from error
    if not samples:
        raise UsageError(f"{display_path(csv_path)} has no rows; expected lines path,label")
    return strip_labels(without_repeats(samples, display_path(csv_path)), display_path(csv_path))


def without_repeats(samples: list[LabelledSample], where: str) -> list[LabelledSample]:
    """One sample per image: a repeated row would put the same image in train and val (an inflated
    accuracy). Repeats are dropped with one warning; one image under two labels is refused."""
    seen: dict[str, LabelledSample] = {}
    kept: list[LabelledSample] = []
    for sample in samples:
        key = os.path.normpath(os.fspath(sample.path))
        first = seen.get(key)
        if first is None:
            seen[key] = sample
            kept.append(sample)
        elif first.label.strip() != sample.label.strip():
            raise UsageError(f"{where}: {display_path(sample.path)} is listed as {display_path(first.label)!r} and as "
                             f"{display_path(sample.label)!r}; give each image one label")
    if len(kept) < len(samples):
        warn_verbatim(f"{where}: {len(samples) - len(kept)} repeated row(s) dropped (same image listed more than "
                      "once); each image is used once, so train and val never share one")
    return kept


def _unknown_header(cells: list[str], base: Path) -> bool:
    """A first row like ``img,species``: two cells, the first no image file name and no existing file."""
    if len(cells) != 2 or not cells[0] or not cells[1]:
        return False
    path = Path(cells[0])
    if path.suffix.lower() in IMAGE_EXTENSIONS or "/" in cells[0] or "\\" in cells[0]:
        return False
    return not (path if path.is_absolute() else base / path).exists()


def _check_label_text(csv_path: Path, line: int, label: str) -> None:
    """A label names a class in labels.json, the model and every report: it must be text. A non-UTF-8
    byte (read as a surrogate escape, which keeps non-UTF-8 file names working) is refused here."""
    bad = next((ch for ch in label if "\udc80" <= ch <= "\udcff"), None)
    if bad is not None:
        raise UsageError(f"{display_path(csv_path)}:{line}: the label holds byte 0x{ord(bad) - 0xDC00:02X}, which "
                         "is not UTF-8 text; save the manifest as UTF-8 (file names may stay as they are)")


def strip_labels(samples: list[LabelledSample], where: str) -> list[LabelledSample]:
    """Labels with spaces around them (``"cat "``, a folder named ``cat ``) stripped, with one warning naming
    them: ``cat`` and ``cat `` are one class, never two classes that print the same, and never merged
    without a word."""
    changed = sorted({s.label for s in samples if s.label != s.label.strip()})
    if not changed:
        return samples
    shown = ", ".join(repr(label) for label in changed[:5]) + (", ..." if len(changed) > 5 else "")
    warn_verbatim(f"{where}: labels with spaces around them taken without the spaces ({shown}); a label is "
                  "its name stripped of surrounding spaces")
    return [replace(s, label=s.label.strip()) if s.label != s.label.strip() else s for s in samples]


def stratified_split(
    samples: Sequence[_Sample], fraction: float, seed: int
) -> tuple[list[_Sample], list[_Sample]]:
    """``(train, val)``: about ``fraction`` of each class in val, chosen by ``seed``.

    Deterministic for the same samples, fraction and seed. A class with at least 2 samples keeps at
    least 1 in each part; a class with 1 sample stays in train. Both parts keep the input order.
    """
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--val-split {fraction}: expected a fraction between 0 and 1, e.g. 0.2")
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        by_label[sample.label].append(index)
    rng = random.Random(seed)
    val_indices: set[int] = set()
    for label in sorted(by_label):  # sorted: the draw must not depend on which class came first
        indices = by_label[label]
        if len(indices) < 2:
            continue
        count = min(len(indices) - 1, max(1, math.floor(len(indices) * fraction + 0.5)))
        val_indices.update(rng.sample(indices, count))
    train = [sample for index, sample in enumerate(samples) if index not in val_indices]
    val = [sample for index, sample in enumerate(samples) if index in val_indices]
    return train, val


def k_shot(samples: Sequence[_Sample], shots: int | None, seed: int) -> list[_Sample]:
    """At most ``shots`` samples of each class (images or texts), drawn by ``seed``; input order kept."""
    if shots is None:
        return list(samples)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        by_label[sample.label].append(index)
    rng = random.Random(seed * 31 + 7)
    chosen: set[int] = set()
    for label in sorted(by_label):  # sorted: the draw must not depend on which class came first
        indices = by_label[label]
        chosen.update(indices if len(indices) <= shots else rng.sample(indices, shots))
    return [s for i, s in enumerate(samples) if i in chosen]


def _class_folder_names(root: Path) -> list[str]:
    try:
        with os.scandir(root) as listing:
            return sorted(e.name for e in listing if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def _named_columns(csv_path: Path, cells: list[str], named: tuple[str | None, str | None]) -> tuple[int, int]:
    """The (path, label) columns of a header row when the user named one or both (``--image-column``,
    ``--label-column``); the other is found by name as usual. ``UsageError`` listing the header otherwise."""
    lowered = [cell.lower() for cell in cells]
    found = []
    for name, candidates, flag in ((named[0], _PATH_COLUMNS, "--image-column"),
                                   (named[1], _LABEL_COLUMNS, "--label-column")):
        wanted = [name.lower()] if name else list(candidates)
        index = next((lowered.index(cell) for cell in wanted if cell in lowered), None)
        if index is None:
            what = f"no column {display_path(name)!r} ({flag})" if name else f"no {flag[2:-7]} column"
            raise UsageError(f"{display_path(csv_path)}: {what} in its first row; its columns: "
                             f"{display_path(', '.join(cells))}")
        found.append(index)
    return found[0], found[1]


def _header_columns(cells: list[str]) -> tuple[int, int] | None:
    lowered = [cell.lower() for cell in cells]
    path_column = next((i for i, cell in enumerate(lowered) if cell in _PATH_COLUMNS), None)
    label_column = next((i for i, cell in enumerate(lowered) if cell in _LABEL_COLUMNS), None)
    if path_column is None or label_column is None:
        return None
    return path_column, label_column


def _manifest_row(
    csv_path: Path, line: int, cells: list[str], columns: tuple[int, int] | None, base: Path
) -> LabelledSample:
    where = f"{display_path(csv_path)}:{line}"
    path_column, label_column = columns or (0, 1)
    # Without a header a third column most likely means an unquoted comma in a path: refuse to guess.
    fits = len(cells) > max(path_column, label_column) if columns else len(cells) == 2
    if not fits:
        got = display_path(",".join(cells))
        raise UsageError(f"{where}: expected path,label, got {len(cells)} column(s): {got}")
    path_text, label = cells[path_column], cells[label_column]
    if not path_text:
        raise UsageError(f"{where}: empty path; expected path,label")
    if not label:
        raise UsageError(f"{where}: empty label for {display_path(path_text)}; expected path,label")
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in label):  # "cat\n" and "cat" would be two classes
        raise UsageError(f"{where}: the label {display_path(label)} holds a line break, NUL or other control "
                         "character; labels are one line of text")
    path = Path(path_text)
    return LabelledSample(path if path.is_absolute() else base / path, label)


def train_and_val(data, val, val_split: float, seed: int, bad_files: BadFiles | None = None, columns=None
                  ) -> tuple[list[LabelledSample], list[LabelledSample]]:
    """The one train/validation split of labelled images: DATA and ``--val`` when given (or, for a dataset
    dictionary named without a split, its ``validation`` split), else a stratified, seeded ``--val-split`` of
    DATA (no validation set at 0, not even a dataset's own). ``columns``: the table columns a user named."""
    from tlcli.data.tables import default_validation

    samples = load_labelled(data, bad_files=bad_files, columns=columns)
    val = val or (default_validation(data) if val_split > 0 else None)
    if val:
        return samples, load_labelled(val, bad_files=bad_files, columns=columns)
    if val_split > 0:
        return stratified_split(samples, val_split, seed)
    return samples, []


def training_classes(train: Sequence, val: Sequence, source, items: str = "images") -> list[str]:
    """The class names of ``train`` (objects with a ``label``) in :func:`class_names_of` order. UsageError
    when there are fewer than two, or when ``val`` has labels the training data lacks."""
    classes = class_names_of(train)
    if len(classes) < 2:
        raise UsageError(f"{display_path(source)}: found {len(classes)} class; training a classifier needs at "
                         f"least two")
    unknown = sorted({s.label for s in val} - set(classes))
    if unknown:
        raise UsageError(f"validation labels not in the training data: {', '.join(unknown[:5])}; "
                         f"add training {items} for them or drop them from --val")
    return classes


def class_names_of(samples: Sequence) -> list[str]:
    """The class names of ``samples`` (objects with a ``label``): in the data's own order where every sample
    has a ``class_index`` (a dataset's ClassLabel: the model's class *i* is the dataset's label *i*), else
    sorted (class folders, CSV manifests, string labels)."""
    rank: dict[str, int | None] = {}
    for sample in samples:
        rank.setdefault(sample.label, getattr(sample, "class_index", None))
    if rank and all(index is not None for index in rank.values()):
        return sorted(rank, key=lambda label: (rank[label], label))
    return sorted(rank)
