"""Labelled data as tables (tlcli/data/tables.py): parquet, arrow, save_to_disk folders and hf:NAME read
like the class folder they were made from; the column flags; the bad-input rules."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support.tables import BROKEN_PNG, folder_rows, image_dataset, put_in_hf_cache, text_dataset
from tlcli.console.errors import UsageError
from tlcli.data.bad_files import BadFiles
from tlcli.data.labelled import class_names_of, load_labelled, stratified_split, train_and_val
from tlcli.data.sources import expand_paths
from tlcli.data.tables import Columns, default_validation, image_suffix, is_table
from tlcli.data.texts import read_labelled_texts, read_texts

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture
def class_folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(5 + c):  # 5, 6, 7 images: unequal classes
            pixels = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sources(folder: Path, tmp_path: Path, image_column: str = "image") -> dict[str, str]:
    """The class folder's images and labels as every table form: {form: DATA}."""
    images, labels = folder_rows(folder)
    dataset = image_dataset(images, labels, label_names=CLASSES, image_column=image_column)
    dataset.to_parquet(str(tmp_path / "data.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    stream_arrow = tmp_path / "stream.arrow"  # the datasets (stream) format
    stream_arrow.write_bytes(next((tmp_path / "saved").glob("data-*.arrow")).read_bytes())
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.memory_map(str(stream_arrow))).read_all()
    file_arrow = tmp_path / "file.arrow"  # the random-access file format, in two record batches
    with pa.ipc.new_file(str(file_arrow), table.schema) as writer:
        for batch in table.to_batches(max_chunksize=7):
            writer.write_batch(batch)
    return {"parquet": str(tmp_path / "data.parquet"), "saved": str(tmp_path / "saved"),
            "stream arrow": str(stream_arrow), "file arrow": str(file_arrow)}


@pytest.mark.parametrize("form", ["parquet", "saved", "stream arrow", "file arrow"])
def test_every_table_form_reads_like_its_class_folder(class_folder, tmp_path, form):
    data = sources(class_folder, tmp_path)[form]
    assert is_table(data)
    expected = load_labelled(class_folder)
    got = load_labelled(data)
    assert [s.label for s in got] == [s.label for s in expected]
    assert [digest(s.path) for s in got] == [digest(s.path) for s in expected]
    assert class_names_of(got) == class_names_of(expected) == CLASSES
    # Same order, same seed: the same images are held out for validation.
    folder_train, folder_val = stratified_split(expected, 0.3, seed=7)
    table_train, table_val = stratified_split(got, 0.3, seed=7)
    assert [digest(s.path) for s in table_val] == [digest(s.path) for s in folder_val]
    assert len(table_train) == len(folder_train)


def test_classlabel_order_is_kept_and_string_labels_sort(class_folder, tmp_path):
    images, labels = folder_rows(class_folder)
    image_dataset(images, labels, label_names=["fox", "cat", "dog"]).to_parquet(str(tmp_path / "ordered.parquet"))
    image_dataset(images, labels).to_parquet(str(tmp_path / "strings.parquet"))
    ordered = load_labelled(tmp_path / "ordered.parquet")
    assert class_names_of(ordered) == ["fox", "cat", "dog"]  # the dataset's label i is the model's class i
    assert {s.label: s.class_index for s in ordered} == {"fox": 0, "cat": 1, "dog": 2}
    assert class_names_of(load_labelled(tmp_path / "strings.parquet")) == ["cat", "dog", "fox"]


def test_images_are_written_once_and_a_torn_file_is_rewritten(class_folder, tmp_path, capsys):
    data = sources(class_folder, tmp_path)["parquet"]
    first = load_labelled(data)
    assert "18 images written" in capsys.readouterr().err
    folder = first[0].path.parent
    assert folder.parent.name == "tables" and str(folder).startswith(str(tmp_path / "home"))
    assert first[0].path.name == "000000.png" and first[-1].path.name == "000017.png"
    first[3].path.write_bytes(b"torn")  # a crash mid-write (or a damaged cache)
    again = load_labelled(data)
    assert [s.path for s in again] == [s.path for s in first]
    assert "1 images written" in capsys.readouterr().err
    assert [digest(s.path) for s in again] == [digest(s.path) for s in load_labelled(class_folder)]


def test_image_paths_in_a_table_are_used_where_they_are(class_folder, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = load_labelled(class_folder)
    relative = [str(s.path.relative_to(tmp_path)) for s in expected]  # relative to the table's folder
    pq.write_table(pa.table({"image": relative, "label": [s.label for s in expected]}), tmp_path / "paths.parquet")
    got = load_labelled(tmp_path / "paths.parquet")
    assert [s.path for s in got] == [s.path for s in expected]


def test_undecodable_and_missing_images_are_bad_files(class_folder, tmp_path):
    from tlcli.data.images import load_images

    images, labels = folder_rows(class_folder)
    images[2], images[4] = BROKEN_PNG, None
    image_dataset(images, labels, label_names=CLASSES).to_parquet(str(tmp_path / "bad.parquet"))
    bad = BadFiles()
    samples = load_labelled(tmp_path / "bad.parquet", bad_files=bad)
    assert len(samples) == 17 and [b.reason for b in bad] == ["no image in column 'image'"]
    assert "row 4" in str(list(bad)[0].path)
    decoded = dict(load_images([s.path for s in samples], workers=0))
    broken = [i for i, result in decoded.items() if isinstance(result, Exception)]
    assert broken == [2] and samples[2].path.name == "000002.png"


def test_rows_without_a_label_are_left_out_and_all_unlabelled_is_refused(class_folder, tmp_path, capsys):
    images, labels = folder_rows(class_folder)
    ids = [CLASSES.index(x) for x in labels]
    ids[0] = ids[5] = -1  # the datasets convention for "no label"
    image_dataset(images, ids, label_names=CLASSES).to_parquet(str(tmp_path / "some.parquet"))
    assert len(load_labelled(tmp_path / "some.parquet")) == 16
    assert "2 of 18 rows have no label" in capsys.readouterr().err
    image_dataset(images, [-1] * 18, label_names=CLASSES).to_parquet(str(tmp_path / "none.parquet"))
    with pytest.raises(UsageError, match="no row has a label"):
        load_labelled(tmp_path / "none.parquet")
    # Prediction inputs ignore labels: every row is an image.
    paths, skipped = expand_paths([str(tmp_path / "none.parquet")])
    assert len(paths) == 18 and skipped == []


def test_missing_or_unknown_columns_list_what_there_is(class_folder, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images, labels = folder_rows(class_folder)  # a plain table: raw bytes and strings, no datasets features
    pq.write_table(pa.table({"picture": images, "kind": labels}), tmp_path / "x.parquet")
    with pytest.raises(UsageError, match=r"no image column .*its columns: picture, kind; name it with --image-column"):
        load_labelled(tmp_path / "x.parquet")
    with pytest.raises(UsageError, match=r"no column 'pic' \(--image-column\); its columns: picture, kind"):
        load_labelled(tmp_path / "x.parquet", columns=Columns(image="pic", label="kind"))
    got = load_labelled(tmp_path / "x.parquet", columns=Columns(image="picture", label="kind"))
    assert class_names_of(got) == CLASSES


def test_the_one_image_and_classlabel_columns_are_found_by_type(class_folder, tmp_path):
    images, labels = folder_rows(class_folder)
    dataset = image_dataset(images, labels, label_names=CLASSES, image_column="photo", label_column="labels")
    dataset.to_parquet(str(tmp_path / "beans-like.parquet"))  # beans: columns image_file_path, image, labels
    assert class_names_of(load_labelled(tmp_path / "beans-like.parquet")) == CLASSES


def test_a_dataset_dict_reads_train_by_default_and_offers_its_validation_split(class_folder, tmp_path):
    import datasets

    images, labels = folder_rows(class_folder)
    full = image_dataset(images, labels, label_names=CLASSES)
    datasets.DatasetDict({"train": full, "validation": full.select([0, 6, 12]), "test": full.select([1, 7])}
                         ).save_to_disk(str(tmp_path / "dict"))
    data = str(tmp_path / "dict")
    assert len(load_labelled(data)) == 18
    assert len(load_labelled(f"{data}:test")) == 2
    assert len(load_labelled(data, default_split="test")) == 2
    assert default_validation(data) == f"{data}:validation"
    assert default_validation(f"{data}:train") is None  # a named split means that split only
    train, val = train_and_val(data, None, 0.2, 0)
    assert len(train) == 18 and [s.label for s in val] == CLASSES
    with pytest.raises(UsageError, match=r"no split 'valid'; its splits: train, validation, test"):
        load_labelled(f"{data}:valid")


def test_hf_name_not_in_the_cache_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(UsageError) as caught:
        load_labelled("hf:someone/beans")
    message = str(caught.value)
    assert "not in the local Hugging Face datasets cache" in message and str(tmp_path / "empty-cache") in message
    assert "datasets.load_dataset('someone/beans').save_to_disk('DIR')" in message and "\n" not in message


def test_hf_name_is_read_from_the_local_cache(class_folder, tmp_path, monkeypatch):
    images, labels = folder_rows(class_folder)
    full = image_dataset(images, labels, label_names=CLASSES)
    cache = tmp_path / "hf-cache"
    put_in_hf_cache({"train": full, "validation": full.select([0, 6, 12])}, cache, "someone/beans")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "someone" / "beans").mkdir(parents=True)  # a local folder of that name is not what hf: means
    got = load_labelled("hf:someone/beans")
    assert [digest(s.path) for s in got] == [digest(s.path) for s in load_labelled(class_folder)]
    assert class_names_of(got) == CLASSES
    assert default_validation("hf:someone/beans") == "hf:someone/beans:validation"
    assert len(load_labelled("hf:someone/beans:validation")) == 3


def test_csv_manifest_honours_named_columns(class_folder, tmp_path):
    expected = load_labelled(class_folder)
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,file,species\n" + "".join(f"{i},{s.path},{s.label}\n" for i, s in enumerate(expected)))
    got = load_labelled(manifest, columns=Columns(label="species"))
    assert [(s.path, s.label) for s in got] == [(s.path, s.label) for s in expected]
    with pytest.raises(UsageError, match=r"no column 'kind' \(--label-column\) in its first row; its columns: "
                                          r"id, file, species"):
        load_labelled(manifest, columns=Columns(label="kind"))


def test_labelled_texts_from_parquet_csv_and_jsonl_with_named_columns(tmp_path):
    texts = ["a cat sat", "dogs bark", "the fox ran", "cats purr"]
    labels = ["cat", "dog", "fox", "cat"]
    text_dataset(texts, labels, label_names=["fox", "dog", "cat"]).to_parquet(str(tmp_path / "t.parquet"))
    samples = read_labelled_texts(tmp_path / "t.parquet")
    assert [(s.text, s.label) for s in samples] == list(zip(texts, labels))
    assert class_names_of(samples) == ["fox", "dog", "cat"]
    text_dataset(texts, labels, text_column="review", label_column="stars").to_parquet(str(tmp_path / "r.parquet"))
    with pytest.raises(UsageError, match=r"no text column .*its columns: review, stars"):
        read_labelled_texts(tmp_path / "r.parquet")
    named = read_labelled_texts(tmp_path / "r.parquet", columns=Columns(text="review", label="stars"))
    assert [(s.text, s.label) for s in named] == list(zip(texts, labels))
    assert read_texts([], tmp_path / "r.parquet", columns=Columns(text="review")) == texts
    (tmp_path / "r.csv").write_text("stars,review\n" + "".join(f"{b},{a}\n" for a, b in zip(texts, labels)))
    csv_rows = read_labelled_texts(tmp_path / "r.csv", columns=Columns(text="review", label="stars"))
    assert [(s.text, s.label) for s in csv_rows] == list(zip(texts, labels))
    with pytest.raises(UsageError, match=r"no column 'body' \(--text-column\) in its first row; its columns: stars, "
                                          "review"):
        read_labelled_texts(tmp_path / "r.csv", columns=Columns(text="body"))
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"review": a, "stars": b}) + "\n"
                                              for a, b in zip(texts, labels)))
    jsonl_rows = read_labelled_texts(tmp_path / "r.jsonl", columns=Columns(text="review", label="stars"))
    assert [(s.text, s.label) for s in jsonl_rows] == list(zip(texts, labels))


def test_damaged_table_is_one_usage_error(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is no parquet file PAR1")
    with pytest.raises(UsageError, match="not a readable parquet file"):
        load_labelled(tmp_path / "bad.parquet")
    (tmp_path / "bad.arrow").write_bytes(b"garbage" * 10)
    with pytest.raises(UsageError, match="not a readable Arrow file"):
        load_labelled(tmp_path / "bad.arrow")


def test_image_suffix_from_magic_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="JPEG")
    assert image_suffix(buffer.getvalue()) == ".jpg"
    assert image_suffix(BROKEN_PNG) == ".png"
    assert image_suffix(b"????", "x.webp") == ".webp" and image_suffix(b"????") == ".img"
