"""A CSV manifest whose label is not UTF-8 is one line naming the line, exit 2, and no run folder (it traced
back writing labels.json, leaving a run behind). Non-UTF-8 file names in it still work."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (16, 16), (i * 30, 0, 0)).save(folder / f"{i}.png")


def test_a_non_utf8_label_is_one_line_and_leaves_no_run(cli, tmp_path):
    write_images(tmp_path / "imgs", 8)
    rows = "path,label\n" + "".join(f"imgs/{i}.png,{'cat' if i % 2 else 'dog'}\n" for i in range(7))
    (tmp_path / "train.csv").write_bytes(rows.encode() + b"imgs/7.png,caf\xe9\n")
    result = cli("finetune", "train.csv", "--model", "resnet18", "--pretrained", "none", "--image-size", "16",
                 "--epochs", "1", "--out", "runs/x")
    assert result.exit_code == 2, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "train.csv:9" in message and "UTF-8" in message, message
    assert not Path("runs/x").exists()


def test_a_non_utf8_file_name_still_names_its_file(tmp_path):
    from tlcli.data.labelled import read_manifest

    folder = tmp_path / "imgs"
    write_images(folder, 1)
    name = b"caf\xe9.png"
    (folder / "0.png").rename(folder / name.decode("utf-8", "surrogateescape"))
    (tmp_path / "m.csv").write_bytes(b"imgs/" + name + b",cat\n")
    samples = read_manifest(tmp_path / "m.csv")
    assert samples[0].label == "cat" and samples[0].path.exists()
