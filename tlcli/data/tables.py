"""Labelled data given as a table: a ``.parquet`` or ``.arrow`` file, a folder written by ``datasets``'
``save_to_disk``, or ``hf:NAME`` read from the local Hugging Face datasets cache (never downloaded).

Each is turned into the rows the folder and CSV readers give (``(file, label)`` for images, which
tlcli.data.labelled makes ``LabelledSample`` rows of; ``(text, label)`` for texts), so a command reads a table
exactly like a class folder (this module imports neither reader: they call it):

- images stored in the table as bytes are written once to files under ``TLCLI_HOME/tables/`` (one file a row,
  named by the row number, in a folder keyed by the table's files and the column) and decoded from there by
  the same decoder as any image file, so an undecodable row is skipped, named and counted against
  ``--max-bad`` like a bad file; images stored as paths are used where they are (relative to the table);
- labels come from a ``ClassLabel`` column as its names (and the classes keep the ClassLabel's order, so a
  model's class *i* is the dataset's label *i*), from a string column as they are (classes then sorted, as
  class folders), from an integer column as their decimal text; a row without a label (``None``, or -1 in a
  ClassLabel column: a test split without labels) is left out of labelled data with one warning;
- a dataset dictionary (a ``save_to_disk`` folder with ``dataset_dict.json``, or ``hf:NAME``) is read one split
  at a time: ``SOURCE:SPLIT`` names it, otherwise ``train`` (``test`` for ``evaluate``/``predict``);
  :func:`default_validation` names the ``validation`` split as the default ``--val``.

Light at import (no pyarrow, no datasets): ``tlcli --help`` must not pay for them. Everything wrong with a
table is a :class:`~tlcli.console.errors.UsageError` naming the source and the fix.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path, info
from tlcli.data.common import IMAGE_EXTENSIONS, BadImage, warn_verbatim
from tlcli.runs.events import writer_alive

TABLE_SUFFIXES = (".parquet", ".arrow")
HF_PREFIX = "hf:"
DATASET_FILES = ("dataset_info.json", "state.json")  # a folder written by Dataset.save_to_disk
DATASET_DICT_FILE = "dataset_dict.json"  # ... by DatasetDict.save_to_disk (one sub-folder a split)
TRAIN_SPLIT, VALIDATION_SPLIT, TEST_SPLIT = "train", "validation", "test"

# The columns looked for by name when no flag names one (then the one column of the right feature type).
IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label",)

BATCH_ROWS = 256  # rows per batch read: a batch of images in memory at a time, not the table


@dataclass(frozen=True)
class Columns:
    """The columns a user named (``--image-column``, ``--label-column``, ``--text-column``); None: found by
    name, as the docstring of each reader says."""

    image: str | None = None
    label: str | None = None
    text: str | None = None


def columns_of(cfg) -> Columns:
    """The column flags of a command's config (a config without them: every column found by name)."""
    return Columns(getattr(cfg, "image_column", None), getattr(cfg, "label_column", None),
                   getattr(cfg, "text_column", None))


# --- which inputs are tables -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TableSource:
    given: str  # as the user wrote it
    kind: str  # "parquet" | "arrow" | "saved" (a save_to_disk folder) | "hf" (the local datasets cache)
    location: str  # the file or folder, or the dataset's name on the Hub
    config: str | None = None  # hf: only
    split: str | None = None  # named with :SPLIT


def table_source(data: os.PathLike | str) -> TableSource | None:
    """The table ``data`` names, or None when it names none (a class folder, a CSV, an image, a missing
    path: the other readers report those). ``UsageError`` for a malformed ``hf:`` name."""
    given = os.fsdecode(data)
    if given.startswith(HF_PREFIX):
        parts = given[len(HF_PREFIX):].split(":")
        if not parts[0] or len(parts) > 3 or not all(parts):
            raise UsageError(f"{display_path(given)}: expected hf:NAME, hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT "
                             "(e.g. hf:beans:validation)")
        name, config, split = parts[0], (parts[1] if len(parts) == 3 else None), parts[-1] if len(parts) > 1 else None
        return TableSource(given, "hf", name, config, split)
    kind = _table_kind(Path(given))
    if kind is not None:
        return TableSource(given, kind, given)
    location, colon, split = given.rpartition(":")
    if colon and location and split and "/" not in split:
        kind = _table_kind(Path(location))
        if kind is not None:
            return TableSource(given, kind, location, split=split)
    return None


def is_table(data: os.PathLike | str) -> bool:
    return table_source(data) is not None


def _table_kind(path: Path) -> str | None:
    try:
        if path.is_file():
            suffix = path.suffix.lower()
            return suffix[1:] if suffix in TABLE_SUFFIXES else None
        if path.is_dir() and any((path / name).is_file() for name in (DATASET_DICT_FILE, *DATASET_FILES)):
            return "saved"
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return None


# --- opening one table -------------------------------------------------------------------------------------

@dataclass
class Table:
    """One split of a table: its columns, their Hugging Face features (``{}`` where the file has none), and
    its rows as pyarrow batches of the columns asked for."""

    source: TableSource
    split: str | None
    names: list[str]
    features: dict[str, dict]
    files: list[Path]  # the data files (what the extracted images are keyed by)
    base: Path  # where relative image paths in the table are resolved
    _batches: Callable[[list[str]], Iterator] = field(repr=False)

    @property
    def where(self) -> str:
        """The source for messages, with the split read where it was not named."""
        if self.split and not self.source.split:
            return f"{display_path(self.source.given)} (split {self.split})"
        return display_path(self.source.given)

    def rows(self, columns: Sequence[str | None]) -> Iterator[tuple]:
        """One tuple a row, a value per column (None for a column given as None), in table order."""
        wanted = sorted({c for c in columns if c is not None}, key=list(columns).index)
        try:
            for batch in self._batches(wanted):
                values = {name: batch.column(name).to_pylist() for name in wanted}
                for index in range(batch.num_rows):
                    yield tuple(values[c][index] if c is not None else None for c in columns)
        except UsageError:
            raise
        except Exception as error:  # a torn file, a bad page: pyarrow raises OSError or ArrowException
            raise UsageError(f"{self.where}: cannot read its rows ({_first_line(error)}); the file is damaged or "
                             "not a table") from None


def open_table(source: TableSource, default_split: str = TRAIN_SPLIT) -> Table:
    """The table ``source`` names (its ``:SPLIT``, else ``default_split``, else its only split)."""
    if source.kind in ("parquet", "arrow"):
        if source.split:
            raise UsageError(f"{display_path(source.given)}: a {source.kind} file has no splits; drop "
                             f":{display_path(source.split)}")
        return _open_parquet(source) if source.kind == "parquet" else _open_arrow(source)
    return _open_dataset(source, default_split)


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError("reading parquet or arrow files needs pyarrow: pip install 'tlcli[datasets]'") from None
    return pyarrow


def _open_parquet(source: TableSource) -> Table:
    pq = _pyarrow().parquet

    path = Path(source.location)
    try:
        handle = pq.ParquetFile(path)
        schema = handle.schema_arrow
    except Exception as error:
        raise UsageError(f"{display_path(path)}: not a readable parquet file ({_first_line(error)})") from None

    def batches(columns: list[str]):
        return pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)

    return Table(source, None, list(schema.names), _hf_features(schema.metadata), [path], path.parent, batches)


def _open_arrow(source: TableSource) -> Table:
    """An Arrow IPC file: the stream format (what ``datasets`` writes) or the random-access file format."""
    pa = _pyarrow()

    path = Path(source.location)

    def open_reader():
        stream = pa.memory_map(str(path))
        try:
            return pa.ipc.open_stream(stream)
        except pa.ArrowInvalid:
            return pa.ipc.open_file(pa.memory_map(str(path)))

    try:
        schema = open_reader().schema
    except Exception as error:
        raise UsageError(f"{display_path(path)}: not a readable Arrow file ({_first_line(error)})") from None

    def batches(columns: list[str]):
        reader = open_reader()
        if isinstance(reader, pa.ipc.RecordBatchFileReader):
            found = (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            found = iter(reader)
        for batch in found:
            yield batch.select(columns)

    return Table(source, None, list(schema.names), _hf_features(schema.metadata), [path], path.parent, batches)


def _open_dataset(source: TableSource, default_split: str) -> Table:
    dataset = _load_hub(source) if source.kind == "hf" else _load_saved(source)
    split = None
    if hasattr(dataset, "keys"):  # a DatasetDict
        split = _pick_split(source, list(dataset.keys()), default_split)
        dataset = dataset[split]
    elif source.split:
        raise UsageError(f"{display_path(source.given)}: this dataset has no splits (it was saved as one Dataset); "
                         f"drop :{display_path(source.split)}")
    files = [Path(entry["filename"]) for entry in dataset.cache_files]
    base = Path(source.location) if source.kind == "saved" else Path.cwd()

    def batches(columns: list[str]):
        return dataset.select_columns(columns).with_format("arrow").iter(batch_size=BATCH_ROWS)

    return Table(source, split, list(dataset.column_names), dataset.features.to_dict(), files, base, batches)


def _pick_split(source: TableSource, splits: list[str], default_split: str) -> str:
    shown = ", ".join(splits)
    if source.split:
        if source.split not in splits:
            raise UsageError(f"{display_path(source.given)}: no split {display_path(source.split)!r}; its splits: "
                             f"{display_path(shown)}")
        return source.split
    if default_split in splits:
        return default_split
    if len(splits) == 1:
        return splits[0]
    raise UsageError(f"{display_path(source.given)}: which split? it has {display_path(shown)} and no "
                     f"{default_split!r}; name one, e.g. {display_path(source.given)}:{display_path(splits[0])}")


def _load_saved(source: TableSource):
    datasets = _datasets()
    try:
        return datasets.load_from_disk(source.location)
    except Exception as error:
        raise UsageError(f"{display_path(source.location)}: not a readable datasets.save_to_disk folder "
                         f"({_first_line(error)})") from None


def _load_hub(source: TableSource):
    """``hf:NAME`` from the local datasets cache only: what ``load_dataset(NAME)`` reads there with
    ``HF_DATASETS_OFFLINE=1`` (datasets' own cache builder), never the network and never a local folder that
    happens to be called NAME."""
    datasets = _datasets()
    cache = os.environ.get("HF_DATASETS_CACHE") or datasets.config.HF_DATASETS_CACHE  # read now, not at import
    return _cached_dataset(source.location, source.config, os.path.expanduser(str(cache)))


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, config: str | None, cache: str):
    from datasets.packaged_modules.cache.cache import Cache

    try:
        builder = Cache(cache_dir=cache, dataset_name=name.split("/")[-1], repo_id=name, config_name=config,
                        version="auto", hash="auto")
        return builder.as_dataset()
    except ValueError as error:
        message = str(error)
        if "configurations in the cache" in message:  # several cached: one must be named
            configs = re.findall(r"configurations in the cache: (.*)", message)
            shown = f" ({configs[0]})" if configs else ""
            raise UsageError(f"hf:{display_path(name)}: several configurations are cached{display_path(shown)}; "
                             f"name one: hf:{display_path(name)}:CONFIG:SPLIT") from None
        if "Couldn't find cache" not in message:
            raise UsageError(f"hf:{display_path(name)}: cannot read it from the local cache "
                             f"({_first_line(error)})") from None
        configs = re.findall(r"Available configs in the cache: (.*)", message)
        if config is not None and configs:
            raise UsageError(f"hf:{display_path(name)}: configuration {display_path(config)!r} is not in the local "
                             f"cache; cached: {display_path(configs[0])}") from None
    except Exception as error:
        raise UsageError(f"hf:{display_path(name)}: cannot read it from the local cache "
                         f"({_first_line(error)})") from None
    what = name if config is None else f"{name}', '{config}"
    raise UsageError(
        f"hf:{display_path(name)} is not in the local Hugging Face datasets cache ({display_path(cache)}; "
        "HF_DATASETS_CACHE sets it) and tlcli never downloads; on a machine with network run: python -c "
        f"\"import datasets; datasets.load_dataset('{display_path(what)}').save_to_disk('DIR')\", copy DIR here "
        "and pass DIR")


def _datasets():
    """The ``datasets`` library, quiet: no progress bars or cache notes on stderr (tlcli's own lines say what
    is read). Nothing here reaches the network: saved folders and the cache are read from disk."""
    try:
        import datasets
    except ImportError:
        raise UsageError("reading a Hugging Face dataset needs the datasets library: pip install 'tlcli[datasets]'"
                         ) from None
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    return datasets


def _hf_features(metadata: dict | None) -> dict[str, dict]:
    """The Hugging Face features a parquet or arrow file carries in its schema metadata (``datasets`` writes
    them), as ``{column: {"_type": "ClassLabel", "names": [...]}, ...}``; ``{}`` when there are none."""
    raw = (metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return {}
    return features if isinstance(features, dict) else {}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


# --- columns -----------------------------------------------------------------------------------------------

def pick_column(table: Table, named: str | None, candidates: Sequence[str], what: str, flag: str,
                feature_type: str | None = None) -> str:
    """The column ``named`` (which must exist), else the first of ``candidates``, else the one column whose
    feature is ``feature_type`` (``Image``, ``ClassLabel``). ``UsageError`` listing the columns otherwise."""
    available = f"its columns: {display_path(', '.join(table.names))}"
    if named is not None:
        if named in table.names:
            return named
        raise UsageError(f"{table.where}: no column {display_path(named)!r} ({flag}); {available}")
    for name in candidates:
        if name in table.names:
            return name
    typed = [name for name in table.names if _feature_type(table.features.get(name)) == feature_type]
    if feature_type is not None and len(typed) == 1:
        return typed[0]
    looked = ", ".join(candidates) + (f" or a single {feature_type} column" if feature_type else "")
    raise UsageError(f"{table.where}: no {what} column (looked for {looked}); {available}; name it with {flag}")


def _feature_type(feature) -> str | None:
    return feature.get("_type") if isinstance(feature, dict) else None


def class_label_names(table: Table, column: str) -> list[str] | None:
    feature = table.features.get(column)
    if _feature_type(feature) != "ClassLabel":
        return None
    names = feature.get("names")
    return [str(name) for name in names] if isinstance(names, list) else None


class _Labels:
    """A label column's values as text: ClassLabel ids as names (with their index), strings as they are,
    integers as decimal text; None for a row without a label."""

    def __init__(self, table: Table, column: str):
        self.table, self.column = table, column
        self.names = class_label_names(table, column)

    def __call__(self, row: int, value) -> tuple[str | None, int | None]:
        if value is None:
            return None, None
        if self.names is not None:
            if isinstance(value, int) and not isinstance(value, bool):
                if value == -1:  # the datasets convention: no label (test splits)
                    return None, None
                if 0 <= value < len(self.names):
                    return self.names[value], value
            raise UsageError(f"{self.table.where} row {row}: label {value!r} is not one of the {len(self.names)} "
                             f"class ids of column {display_path(self.column)!r} (0..{len(self.names) - 1}, or -1 for "
                             "none)")
        if isinstance(value, str):
            return (value if value.strip() else None), None
        if isinstance(value, int):  # bool included: True/False are two classes
            return str(value), None
        if isinstance(value, float) and value.is_integer():
            return str(int(value)), None
        raise UsageError(f"{self.table.where} row {row}: label {display_path(repr(value)[:40])} in column "
                         f"{display_path(self.column)!r} is no class name or class id; pick the label column with "
                         "--label-column")


def _check_label(table: Table, row: int, label: str) -> None:
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in label):
        raise UsageError(f"{table.where} row {row}: the label {display_path(label)} holds a line break or other "
                         "control character; labels are one line of text")


def _warn_unlabelled(table: Table, column: str, count: int, total: int) -> None:
    if count == total:
        raise UsageError(f"{table.where}: no row has a label in column {display_path(column)!r} (None, or -1 in a "
                         "ClassLabel column: a test split without labels?); pick labelled data or another split")
    if count:
        warn_verbatim(f"{table.where}: {count} of {total} rows have no label in column {column!r} and are left out")


# --- images ------------------------------------------------------------------------------------------------

def read_image_rows(data: os.PathLike | str, columns: Columns | None = None, bad_files=None,
                    default_split: str = TRAIN_SPLIT, labels: str = "required"
                    ) -> tuple[str, list[tuple[Path, str, int | None]]]:
    """``(where, rows)``: the table for messages, and its images in row order as ``(file, label,
    class_index)`` (``class_index`` where the labels are a ClassLabel; tlcli.data.labelled makes samples of
    them). Rows without an image go to ``bad_files``. ``labels``: ``"required"`` (rows without a label are
    left out with a warning), ``"optional"`` (such rows, or all rows when the table has no label column, get
    the label ``""``) or ``"ignored"`` (every label ``""``)."""
    from tlcli.data.bad_files import BadFiles

    columns = columns or Columns()
    table = open_table(_source(data), default_split)
    image_column = pick_column(table, columns.image, IMAGE_COLUMNS, "image", "--image-column", "Image")
    need_label = labels == "required"
    label_column = None
    if need_label or (labels == "optional" and (columns.label is not None or
                                                any(name in table.names for name in LABEL_COLUMNS))):
        label_column = pick_column(table, columns.label, LABEL_COLUMNS, "label", "--label-column", "ClassLabel")
    if image_column == label_column:
        raise UsageError(f"{table.where}: --image-column and --label-column are both {image_column!r}")
    bad_files = bad_files if bad_files is not None else BadFiles()
    label_of = _Labels(table, label_column) if label_column else None
    samples, unlabelled, total = [], 0, 0
    files = _ImageFiles(table, image_column)
    for row, (image, value) in enumerate(table.rows([image_column, label_column])):
        total += 1
        label, class_index = label_of(row, value) if label_of else (None, None)
        if label is None:
            unlabelled += 1
            if need_label:
                continue
        else:
            _check_label(table, row, label)
        path = files.place(row, image)
        if isinstance(path, BadImage):
            bad_files.add(path)
        else:
            samples.append((path, label or "", class_index))
    if need_label:
        _warn_unlabelled(table, label_column, unlabelled, total)
    labelled = f", labels from {label_column!r}" if label_column else ""
    written = (f"; {files.written} images written to {display_path(files.folder)} (a cache: delete it any time)"
               if files.written else "")
    info(f"{table.where}: {total} rows, images from column {image_column!r}{labelled}{written}")
    return table.where, samples


def read_images(data: os.PathLike | str, columns: Columns | None = None,
                default_split: str = TRAIN_SPLIT) -> tuple[list[Path], list[BadImage]]:
    """The image files of a table's image column, in row order (labels ignored), and the rows without one."""
    bad = _Collected()
    _, rows = read_image_rows(data, columns, bad, default_split, labels="ignored")
    return [path for path, _, _ in rows], list(bad)


class _Collected(list):
    """A BadFiles stand-in that keeps the bad rows for the caller, who reports them."""

    def add(self, bad: BadImage) -> None:
        self.append(bad)


def _source(data) -> TableSource:
    source = table_source(data)
    if source is None:
        raise UsageError(f"{display_path(data)}: not a table (.parquet, .arrow, a save_to_disk folder or hf:NAME)")
    return source


# Image formats by their first bytes: the suffix of an extracted file (the decoder itself reads the bytes).
_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"),
          (b"BM", ".bmp"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"qoif", ".qoi"),
          (b"\x00\x00\x00\x0cjP  ", ".jp2"))
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def image_suffix(data: bytes, stored_name: str | None = None) -> str:
    """A file suffix for image bytes: from their magic number, else the name stored beside them, else .img."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    suffix = os.path.splitext(stored_name or "")[1].lower()
    return suffix if suffix in IMAGE_EXTENSIONS else ".img"


class _ImageFiles:
    """Where each row's image is, as a file: a stored path as it is (relative ones against the table's
    folder), stored bytes written once under ``TLCLI_HOME/tables/<table>-<key>/<row>.<suffix>``.

    The key hashes the table's data files (path, size, modification time), the split and the column, so a
    changed table reads a new folder and an unchanged one is written only once. Each file is written to a
    temporary name and renamed; a file already there with the right size is kept (a crash mid-way leaves a
    folder the next run completes)."""

    def __init__(self, table: Table, column: str):
        self.table, self.column = table, column
        self.folder: Path | None = None
        self.written = 0

    def place(self, row: int, value) -> Path | BadImage:
        stored_path, data = None, None
        if isinstance(value, dict):  # the datasets Image feature: {"bytes", "path"}
            data, stored_path = value.get("bytes"), value.get("path")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif isinstance(value, str):
            stored_path = value
        elif value is not None:
            return BadImage(self._row_name(row), f"column {self.column!r} holds {type(value).__name__}, not image "
                            "bytes or a path")
        if data:
            return self._write(row, bytes(data), stored_path)
        if stored_path:
            path = Path(stored_path)
            return path if path.is_absolute() else self.table.base / path
        return BadImage(self._row_name(row), f"no image in column {self.column!r}")

    def _row_name(self, row: int) -> Path:
        return Path(f"{self.table.source.given} row {row}")

    def _write(self, row: int, data: bytes, stored_name: str | None) -> Path:
        folder = self.folder or self._open_folder()
        path = folder / f"{row:06d}{image_suffix(data, stored_name)}"
        try:
            if path.stat().st_size == len(data):
                return path
        except OSError:
            pass
        temporary = folder / f".{path.name}.tmp-{os.getpid()}"
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise UsageError(f"cannot write the images of {self.table.where} to {display_path(folder)} "
                             f"({(error.strerror or str(error)).lower()}); free some space or set TLCLI_HOME to "
                             "a folder with room") from None
        self.written += 1
        return path

    def _open_folder(self) -> Path:
        from tlcli.runs.paths import cache_dir

        source = self.table.source
        stamp = []
        for file in self.table.files:
            try:
                info_ = os.stat(file)
                stamp.append([os.path.realpath(file), info_.st_size, info_.st_mtime_ns])
            except OSError:
                stamp.append([os.fspath(file), None, None])
        key = hashlib.sha256(json.dumps([source.kind, source.location, source.config, self.table.split, self.column,
                                         stamp]).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        stem = Path(source.location).stem if source.kind in ("parquet", "arrow") else source.location
        label = _SAFE_NAME.sub("_", "-".join(p for p in (Path(stem).name or stem, self.table.split) if p))[:60]
        self.folder = cache_dir("tables") / f"{label}-{key}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create {display_path(self.folder)} ({(error.strerror or str(error)).lower()}); "
                             "set TLCLI_HOME to a writable folder") from None
        _sweep_temporaries(self.folder)
        return self.folder


def _sweep_temporaries(folder: Path) -> None:
    """Remove the temporary files a crashed run left (their process is gone)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = re.fullmatch(r"\..*\.tmp-(\d+)", entry.name)
            if match and not writer_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


# --- texts -------------------------------------------------------------------------------------------------

def read_text_rows(data: os.PathLike | str, need_label: bool, columns: Columns | None = None,
                   text_columns: Sequence[str] = ("text",), label_columns: Sequence[str] = LABEL_COLUMNS,
                   default_split: str = TRAIN_SPLIT) -> list[tuple[str, str | None, int | None]]:
    """``(text, label, class_index)`` rows of a table, in order. Rows with an empty text are skipped; with
    ``need_label``, rows without a label are left out with a warning (``label`` None otherwise)."""
    columns = columns or Columns()
    table = open_table(_source(data), default_split)
    text_column = pick_column(table, columns.text, text_columns, "text", "--text-column")
    label_column = None
    if need_label or columns.label is not None:
        label_column = pick_column(table, columns.label, label_columns, "label", "--label-column", "ClassLabel")
    elif any(name in table.names for name in label_columns):
        label_column = next(name for name in label_columns if name in table.names)
    labels = _Labels(table, label_column) if label_column else None
    rows, unlabelled, total = [], 0, 0
    for row, (text, value) in enumerate(table.rows([text_column, label_column])):
        if text is None or (isinstance(text, str) and not text.strip()):
            continue
        if not isinstance(text, str):
            if isinstance(text, (dict, list, bytes)):
                raise UsageError(f"{table.where} row {row}: column {display_path(text_column)!r} holds "
                                 f"{type(text).__name__}, not text; pick the text column with --text-column")
            text = str(text)
        total += 1
        label, class_index = labels(row, value) if labels else (None, None)
        if label is not None:
            _check_label(table, row, label)
        elif need_label:
            unlabelled += 1
            continue
        rows.append((text, label, class_index))
    if not total:
        raise UsageError(f"{table.where}: no rows with text in column {display_path(text_column)!r}")
    if need_label:
        _warn_unlabelled(table, label_column, unlabelled, total)
    return rows


# --- the dataset's own validation split ---------------------------------------------------------------------

def default_validation(data: os.PathLike | str | None) -> str | None:
    """``DATA:validation`` when DATA names a dataset dictionary without a split and the dictionary has a
    ``validation`` split (what its authors hold out for model selection); None otherwise. The ``test`` split
    is never taken for validation: pass it with ``--val`` if that is what you want."""
    if data is None:
        return None
    source = table_source(data)
    if source is None or source.split is not None or source.kind not in ("saved", "hf"):
        return None
    if source.kind == "saved":
        try:
            splits = json.loads((Path(source.location) / DATASET_DICT_FILE).read_text(encoding="utf-8"))["splits"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
    else:
        dataset = _load_hub(source)
        splits = list(dataset.keys()) if hasattr(dataset, "keys") else []
    if VALIDATION_SPLIT not in splits or _default_of(splits) == VALIDATION_SPLIT:
        return None
    val = f"{source.given}:{VALIDATION_SPLIT}"
    info(f"validation data: {display_path(val)} (the dataset's validation split; --val picks other data)")
    return val


def _default_of(splits: list[str]) -> str | None:
    return TRAIN_SPLIT if TRAIN_SPLIT in splits else (splits[0] if len(splits) == 1 else None)
