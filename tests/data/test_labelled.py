"""Class folders, CSV manifests, load_labelled dispatch and the stratified split."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from tlcli.data.sources import (
    BadFiles,
    LabelledSample,
    load_labelled,
    read_manifest,
    scan_class_folders,
    stratified_split,
)
from tlcli.console.errors import UsageError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


# --- class folders ------------------------------------------------------------------------------------


def test_class_folders_label_by_first_subfolder(tmp_path):
    for name in ["dog/2.jpg", "dog/1.jpg", "cat/nested/3.png", "cat/4.jpg", "cat/readme.txt"]:
        touch(tmp_path / name)
    samples = scan_class_folders(tmp_path)
    assert [(s.path.relative_to(tmp_path).as_posix(), s.label) for s in samples] == [
        ("cat/4.jpg", "cat"),
        ("cat/nested/3.png", "cat"),
        ("dog/1.jpg", "dog"),
        ("dog/2.jpg", "dog"),
    ]


def test_loose_files_and_empty_classes_are_warned_about_and_left_out(tmp_path, capsys):
    touch(tmp_path / "cat/1.jpg")
    touch(tmp_path / "stray.jpg")
    (tmp_path / "empty-class").mkdir()
    samples = scan_class_folders(tmp_path)
    assert [s.label for s in samples] == ["cat"]
    err = capsys.readouterr().err
    assert "1 images directly in" in err and "empty-class" in err


def test_walk_problems_go_to_the_given_bad_files(tmp_path, capsys):
    touch(tmp_path / "cat/1.jpg")
    (tmp_path / "cat/lost.jpg").symlink_to(tmp_path / "nowhere.jpg")
    bad_files = BadFiles()
    samples = scan_class_folders(tmp_path, bad_files=bad_files)
    assert len(samples) == 1
    assert [(b.path.name, b.reason) for b in bad_files] == [("lost.jpg", "dangling symlink")]
    assert "skipped" in capsys.readouterr().err


@pytest.mark.parametrize(
    "layout, message",
    [
        ([], "no class subfolders"),
        (["a.jpg", "b.jpg"], "2 images but no class subfolders"),
        (["cat/notes.txt", "dog/"], "hold no images"),
    ],
)
def test_wrong_layouts_name_the_expected_one(tmp_path, layout, message):
    root = tmp_path / "data"
    root.mkdir()
    for name in layout:
        (root / name).mkdir() if name.endswith("/") else touch(root / name)
    with pytest.raises(UsageError) as caught:
        scan_class_folders(root)
    assert message in str(caught.value)
    assert "one subfolder per class" in str(caught.value) or "hold no images" in str(caught.value)
    assert caught.value.exit_code == 2


# --- manifests ----------------------------------------------------------------------------------------


def test_manifest_paths_resolve_against_the_csv_folder_not_the_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "set"
    folder.mkdir()
    manifest = folder / "train.csv"
    manifest.write_text(f"path,label\nimgs/a.jpg,cat\n\n{tmp_path / 'abs.jpg'},dog\n\"with, comma.jpg\", cat \n")
    monkeypatch.chdir(tmp_path)  # anywhere else
    assert read_manifest(Path("set/train.csv")) == [
        LabelledSample(Path("set/imgs/a.jpg"), "cat"),
        LabelledSample(tmp_path / "abs.jpg", "dog"),
        LabelledSample(Path("set/with, comma.jpg"), "cat"),
    ]


def test_manifest_without_header_and_with_bom(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("a.jpg,cat\nb.jpg,dog\n".encode("utf-8-sig"))
    assert [(s.path.name, s.label) for s in read_manifest(manifest)] == [("a.jpg", "cat"), ("b.jpg", "dog")]


def test_manifest_header_may_reorder_and_add_columns(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,Label,File\n1,cat,a.jpg\n2,dog,b.jpg\n")
    assert [(s.path.name, s.label) for s in read_manifest(manifest)] == [("a.jpg", "cat"), ("b.jpg", "dog")]


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("path,label\na.jpg,cat\nb.jpg\n", 3, "expected path,label"),
        ("a.jpg,cat\nb.jpg,dog,extra\n", 2, "3 column(s)"),
        ("a.jpg,cat\n,dog\n", 2, "empty path"),
        ("a.jpg,\n", 1, "empty label"),
    ],
)
def test_bad_manifest_rows_name_the_line(tmp_path, text, line, words):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(UsageError) as caught:
        read_manifest(manifest)
    assert f"m.csv:{line}:" in str(caught.value) and words in str(caught.value)


def test_empty_or_missing_manifest_is_a_usage_error(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n")
    with pytest.raises(UsageError, match="no rows"):
        read_manifest(empty)
    with pytest.raises(UsageError, match="cannot read manifest"):
        read_manifest(tmp_path / "absent.csv")


# --- dispatch -----------------------------------------------------------------------------------------


def test_load_labelled_dispatches_on_folder_or_csv(tmp_path):
    touch(tmp_path / "data/cat/1.jpg")
    manifest = tmp_path / "list.CSV"
    manifest.write_text("x.jpg,dog\n")
    assert [s.label for s in load_labelled(tmp_path / "data")] == ["cat"]
    assert [s.label for s in load_labelled(manifest)] == ["dog"]
    other = tmp_path / "list.txt"
    other.write_text("x")
    with pytest.raises(UsageError, match="is no folder, .csv, .parquet or .arrow file"):
        load_labelled(other)
    with pytest.raises(UsageError, match="no such file or folder"):
        load_labelled(tmp_path / "absent")


# --- stratified split ---------------------------------------------------------------------------------


def make_samples(counts: dict[str, int], seed: int = 0) -> list[LabelledSample]:
    samples = [LabelledSample(Path(f"{label}/{i}.jpg"), label) for label, n in counts.items() for i in range(n)]
    random.Random(seed).shuffle(samples)
    return samples


def test_split_keeps_every_class_on_both_sides_and_loses_nothing():
    samples = make_samples({"a": 2, "b": 3, "c": 50, "d": 1, "e": 7})
    train, val = stratified_split(samples, 0.2, seed=1)

    assert sorted(map(str, (s.path for s in train + val))) == sorted(str(s.path) for s in samples)
    assert not set(train) & set(val)
    train_counts, val_counts = Counter(s.label for s in train), Counter(s.label for s in val)
    for label in "abce":
        assert train_counts[label] >= 1 and val_counts[label] >= 1
    assert val_counts["d"] == 0 and train_counts["d"] == 1  # a singleton stays in train
    assert val_counts["c"] == 10  # 20% of 50


def test_split_is_deterministic_and_keeps_input_order():
    samples = make_samples({"a": 30, "b": 30})
    first = stratified_split(samples, 0.3, seed=5)
    assert stratified_split(list(samples), 0.3, seed=5) == first
    assert stratified_split(samples, 0.3, seed=6) != first
    position = {s: i for i, s in enumerate(samples)}
    for part in first:
        assert [position[s] for s in part] == sorted(position[s] for s in part)


def test_split_rejects_fractions_outside_zero_one():
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(UsageError, match="--val-split"):
            stratified_split(make_samples({"a": 4}), fraction, seed=0)
