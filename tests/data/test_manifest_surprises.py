"""Silent surprises of CSV manifests: repeated rows (the same image in train and val), an unknown header
row (it became a training row and a class), labels with a newline or NUL (separate classes that print the
same), and bidi controls in printed file names."""

from __future__ import annotations

import pytest
from PIL import Image

from tlcli.data.labelled import read_manifest, stratified_split
from tlcli.console.errors import UsageError
from tlcli.console.output import display_path, terminal_safe


@pytest.fixture
def images(tmp_path):
    for label in ("cat", "dog"):
        for i in range(4):
            (tmp_path / label).mkdir(exist_ok=True)
            Image.new("RGB", (8, 8)).save(tmp_path / label / f"{i}.png")
    return tmp_path


def _manifest(folder, text):
    path = folder / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _rows(repeat=1):
    return "".join(f"{label}/{i}.png,{label}\n" for label in ("cat", "dog") for i in range(4) for _ in range(repeat))


def test_repeated_rows_are_dropped_with_a_warning_and_never_split_across(images, capsys):
    samples = read_manifest(_manifest(images, _rows(repeat=3)))
    assert len(samples) == 8 and "16 repeated row(s) dropped" in capsys.readouterr().err
    train, val = stratified_split(samples, 0.5, seed=0)
    assert not {s.path for s in train} & {s.path for s in val}


def test_one_image_under_two_labels_is_refused(images):
    with pytest.raises(UsageError, match="give each image one label"):
        read_manifest(_manifest(images, "cat/0.png,cat\n./cat/0.png,dog\ndog/1.png,dog\n"))


def test_an_unknown_header_row_is_taken_as_a_header(images, capsys):
    samples = read_manifest(_manifest(images, "img,species\n" + _rows()))
    assert {s.label for s in samples} == {"cat", "dog"} and len(samples) == 8
    assert "taken as a header" in capsys.readouterr().err


@pytest.mark.parametrize("label", ['"ca\nt"', '"ca\x00t"'])
def test_labels_with_a_newline_or_nul_are_refused(images, label):
    with pytest.raises(UsageError, match="line break, NUL"):
        read_manifest(_manifest(images, f"cat/0.png,{label}\ndog/0.png,dog\n"))


def test_bidi_controls_in_names_are_escaped():
    name = "invoice\u202egpj.exe"
    assert "\u202e" not in display_path(name) and "\\u202e" in display_path(name)
    assert "\u2066" not in terminal_safe("a\u2066b")
