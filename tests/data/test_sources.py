"""expand_paths and the folder walk: order, filters, symlinks, stdin lists, odd names."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tlcli.data.common import BadImage
from tlcli.data.sources import BadFiles, expand_paths


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reasons(bad) -> dict[str, str]:
    return {b.path.name: b.reason for b in bad}


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "photos"
    for name in ["b.jpg", "a.PNG", "sub/c.webp", "sub/deeper/d.tiff", "a-b/e.gif", "notes.txt", "sub/raw.cr2"]:
        touch(root / name)
    touch(root / ".hidden/x.jpg")
    touch(root / "._a.jpg")  # macOS resource fork: not an image despite its name
    return root


def test_folder_walk_is_sorted_by_components_and_filters_extensions(tree):
    paths, bad = expand_paths([str(tree)])
    assert bad == []
    assert [p.relative_to(tree).as_posix() for p in paths] == [
        "a-b/e.gif",
        "a.PNG",  # upper-case extension counts
        "b.jpg",
        "sub/c.webp",
        "sub/deeper/d.tiff",
    ]
    assert all(p.is_relative_to(tree) for p in paths)  # spelled under the root as given


def test_explicit_files_are_taken_whatever_their_extension_and_order_is_kept(tree):
    paths, bad = expand_paths([str(tree / "notes.txt"), str(tree / "b.jpg"), str(tree / "sub")])
    assert [p.name for p in paths] == ["notes.txt", "b.jpg", "c.webp", "d.tiff"]
    assert bad == []


def test_missing_and_dangling_arguments_are_reported_not_raised(tmp_path, tree):
    link = tmp_path / "dangling.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    paths, bad = expand_paths([str(tmp_path / "nope.jpg"), str(link), str(tree / "b.jpg")])
    assert [p.name for p in paths] == ["b.jpg"]
    assert reasons(bad) == {"nope.jpg": "no such file", "dangling.jpg": "dangling symlink"}


def test_dangling_link_inside_a_folder_is_reported(tree):
    (tree / "lost.jpg").symlink_to(tree / "gone.jpg")
    (tree / "lost-notes").symlink_to(tree / "gone")  # not an image name: nothing to say
    paths, bad = expand_paths([str(tree)])
    assert "lost.jpg" not in [p.name for p in paths]
    assert reasons(bad) == {"lost.jpg": "dangling symlink"}


def test_symlink_loops_terminate_and_each_folder_is_walked_once(tree):
    (tree / "sub" / "back-to-root").symlink_to(tree, target_is_directory=True)
    (tree / "sub" / "deeper" / "up").symlink_to("..", target_is_directory=True)
    paths, bad = expand_paths([str(tree)])
    assert bad == []
    names = [p.name for p in paths]
    assert sorted(names) == sorted(set(names)) == ["a.PNG", "b.jpg", "c.webp", "d.tiff", "e.gif"]


def test_symlinks_inside_the_root_are_followed(tmp_path):
    root = tmp_path / "data"
    touch(root / "real" / "x.jpg")
    (root / "alias.jpg").symlink_to(root / "real" / "x.jpg")
    (root / "also").symlink_to(root / "real", target_is_directory=True)
    paths, bad = expand_paths([str(root)])
    assert bad == []
    # "also" sorts before "real", so the real folder is reached through the link first and not twice.
    assert [p.relative_to(root).as_posix() for p in paths] == ["alias.jpg", "also/x.jpg"]


def test_symlinks_leading_outside_the_root_are_skipped_and_reported(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    touch(root / "in.jpg")
    touch(outside / "secret.jpg")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    (root / "etc").symlink_to("/etc", target_is_directory=True)

    paths, bad = expand_paths([str(root)])

    assert [p.name for p in paths] == ["in.jpg"]
    assert set(reasons(bad)) == {"escape", "escape.jpg", "etc"}
    assert all(reason.startswith("symlink leads outside") for reason in reasons(bad).values())
    # Named explicitly, the same file is the user's choice and is taken.
    assert expand_paths([str(root / "escape.jpg")])[0] == [root / "escape.jpg"]


def test_root_given_through_a_symlink_is_walked(tmp_path, tree):
    link = tmp_path / "link-to-photos"
    link.symlink_to(tree, target_is_directory=True)
    paths, bad = expand_paths([str(link)])
    assert bad == [] and len(paths) == 5 and all(p.is_relative_to(link) for p in paths)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_unreadable_subfolder_is_reported(tree):
    locked = tree / "sub" / "deeper"
    locked.chmod(0)
    try:
        paths, bad = expand_paths([str(tree)])
    finally:
        locked.chmod(0o755)
    assert "d.tiff" not in [p.name for p in paths]
    assert reasons(bad) == {"deeper": "permission denied (folder)"}


def test_non_utf8_names_survive_the_walk_and_the_warning(tmp_path, capsys):
    from PIL import Image

    from tlcli.data.images import load_image

    root = tmp_path / "odd"
    root.mkdir()
    name = os.fsdecode(b"bad\xff.png")
    Image.new("RGB", (2, 2)).save(root / name)
    touch(root / os.fsdecode(b"worse\xfe.jpg"), b"junk")

    paths, bad = expand_paths([str(root)])

    assert [p.name for p in paths] == [name, os.fsdecode(b"worse\xfe.jpg")]
    assert os.fsencode(paths[0]).endswith(b"bad\xff.png")  # the exact bytes, not a replacement
    assert load_image(paths[0]).size == (2, 2)
    bad_files = BadFiles()
    with pytest.raises(BadImage) as caught:
        load_image(paths[1])
    bad_files.add(caught.value)
    err = capsys.readouterr().err
    assert "skipped" in err and "worse" in err and "not an image" in err
    assert bad_files.summary()[0]["path"].encode("utf-8")  # JSON-safe text


def test_stdin_dash_reads_one_path_per_line(tree):
    stdin = io.StringIO(f"{tree / 'b.jpg'}\n\n   \n{tree / 'sub'}\r\n{tree / 'missing.jpg'}\n")
    paths, bad = expand_paths(["-", str(tree / "a.PNG"), "-"], stdin=stdin)
    assert [p.name for p in paths] == ["b.jpg", "c.webp", "d.tiff", "a.PNG"]  # "-" read once, in place
    assert reasons(bad) == {"missing.jpg": "no such file"}


def test_stdin_bytes_keep_non_utf8_names(tmp_path):
    target = touch(tmp_path / os.fsdecode(b"caf\xe9.jpg"))

    # Like sys.stdin: text on top, the raw bytes underneath (.buffer), which is what gets read.
    stdin = io.TextIOWrapper(io.BytesIO(os.fsencode(target) + b"\n"), encoding="utf-8")
    paths, bad = expand_paths(["-"], stdin=stdin)
    assert bad == [] and paths == [target]


def test_extensions_can_be_narrowed(tree):
    paths, _ = expand_paths([str(tree)], extensions=frozenset({".jpg"}))
    assert [p.name for p in paths] == ["b.jpg"]


def test_special_files_in_a_walk_are_reported_not_opened(tree):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tree / "pipe.jpg")
    paths, bad = expand_paths([str(tree)])
    assert "pipe.jpg" not in [p.name for p in paths]
    assert reasons(bad) == {"pipe.jpg": "not a regular file"}
