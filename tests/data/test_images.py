"""load_image / load_images: colour modes, orientation, bombs, and every kind of bad file."""

from __future__ import annotations

import io
import os
import pickle
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from tlcli.data.images import DEFAULT_MAX_PIXELS, BadImage, load_image, load_images
from tlcli.console.output import display_path

WHITE = (255, 255, 255)


def bad_reason(path, **kwargs) -> str:
    with pytest.raises(BadImage) as caught:
        load_image(path, **kwargs)
    assert caught.value.path == path
    return caught.value.reason


# --- colour modes -------------------------------------------------------------------------------------


def test_plain_rgb_jpeg_loads_as_rgb(small_jpeg):
    image = load_image(small_jpeg(colour=(200, 30, 30)))
    assert image.mode == "RGB" and image.size == (16, 12)
    red, green, blue = image.getpixel((8, 6))
    assert red > 180 and green < 60 and blue < 60


def test_exif_orientation_6_rotates_clockwise_and_moves_the_marked_corner(save_image):
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 6, 6))  # mark the stored top-left corner red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = save_image("rotated.jpg", stored, exif=exif, quality=95)

    image = load_image(path)

    assert image.size == (20, 40)  # width and height swapped
    assert image.getpixel((17, 2))[0] > 200  # top-left went to top-right
    assert image.getpixel((2, 2))[2] > 200  # the old top-right corner (blue) is now top-left


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_reference(save_image, orientation):
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3) * 2
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save_image(f"o{orientation}.png", Image.fromarray(pixels), exif=exif)

    expected = ImageOps.exif_transpose(Image.open(path)).convert("RGB")

    assert np.array_equal(np.asarray(load_image(path)), np.asarray(expected))


def test_palette_transparency_becomes_white(save_image):
    image = Image.new("P", (4, 2), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))  # index 0 black, 1 red
    image.paste(1, (2, 0, 4, 2))
    png = save_image("palette.png", image, transparency=0)
    gif = save_image("palette.gif", image, transparency=0)

    for path in (png, gif):
        loaded = load_image(path)
        assert loaded.getpixel((0, 0)) == WHITE  # transparent black -> white, not black
        assert loaded.getpixel((3, 1)) == (255, 0, 0)


def test_rgba_is_composited_onto_white(save_image):
    pixels = np.array(
        [[[0, 0, 0, 0], [0, 0, 0, 128], [0, 0, 255, 255]]], dtype=np.uint8
    )  # transparent black, half-transparent black, opaque blue
    loaded = load_image(save_image("alpha.png", Image.fromarray(pixels, "RGBA")))
    assert loaded.getpixel((0, 0)) == WHITE
    assert all(126 <= c <= 128 for c in loaded.getpixel((1, 0)))
    assert loaded.getpixel((2, 0)) == (0, 0, 255)


def test_rgb_png_with_trns_colour_key_is_composited(save_image):
    pixels = np.array([[[10, 20, 30], [200, 0, 0]]], dtype=np.uint8)
    loaded = load_image(save_image("key.png", Image.fromarray(pixels), transparency=(10, 20, 30)))
    assert loaded.getpixel((0, 0)) == WHITE
    assert loaded.getpixel((1, 0)) == (200, 0, 0)


def test_grey_with_alpha_la(save_image):
    pixels = np.array([[[0, 0], [100, 255]]], dtype=np.uint8)
    loaded = load_image(save_image("la.png", Image.fromarray(pixels, "LA")))
    assert loaded.getpixel((0, 0)) == WHITE
    assert loaded.getpixel((1, 0)) == (100, 100, 100)


def test_one_bit_image(save_image):
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    loaded = load_image(save_image("bits.png", image))
    assert loaded.mode == "RGB"
    assert [loaded.getpixel((x, 0)) for x in range(2)] == [(0, 0, 0), WHITE]


@pytest.mark.parametrize("name, options", [("cyan.tiff", {}), ("cyan.jpg", {"quality": 100})])
def test_cmyk_converts_to_rgb(save_image, name, options):
    loaded = load_image(save_image(name, Image.new("CMYK", (8, 8), (255, 0, 0, 0)), **options))
    red, green, blue = loaded.getpixel((4, 4))
    assert red < 10 and green > 245 and blue > 245


SIXTEEN_BIT = [0, 257, 32768, 65535]
SCALED_TO_EIGHT = [0, 1, 128, 255]  # round(v / 257); a plain convert would give [0, 255, 255, 255]


@pytest.mark.parametrize(
    "name, dtype", [("grey16.png", np.uint16), ("grey16be.tiff", ">u2"), ("grey32.tiff", np.int32)]
)
def test_sixteen_bit_grey_is_scaled_not_clipped(save_image, name, dtype):
    path = save_image(name, Image.fromarray(np.array([SIXTEEN_BIT], dtype=dtype)))
    assert Image.open(path).mode in ("I;16", "I;16B", "I")  # the modes this test means to cover
    loaded = load_image(path)
    assert [loaded.getpixel((x, 0)) for x in range(4)] == [(v, v, v) for v in SCALED_TO_EIGHT]


def test_signed_32_bit_grey_is_stretched(save_image):
    path = save_image("signed.tiff", Image.fromarray(np.array([[-50, 0, 200]], dtype=np.int32)))
    loaded = load_image(path)
    assert [loaded.getpixel((x, 0))[0] for x in range(3)] == [0, 51, 255]


def test_float_grey_in_unit_range(save_image):
    path = save_image("float.tiff", Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)))
    loaded = load_image(path)
    assert [loaded.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


# --- decompression bombs ------------------------------------------------------------------------------


def test_small_limit_refuses_before_decoding(small_jpeg, monkeypatch):
    path = small_jpeg(size=(100, 60))
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or real_load(self))

    reason = bad_reason(path, max_pixels=5_000)

    assert reason.startswith("decompression bomb: 100x60 pixels > limit 5,000")
    assert decoded == []  # refused from the header alone
    assert load_image(path, max_pixels=6_000).size == (100, 60)  # at the limit is fine


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest resets our filter
def test_header_only_png_over_the_default_limit_is_refused(header_only_png):
    # 12000x12000 = 144 Mpx: over tlcli's limit, under the size where PIL itself raises.
    reason = bad_reason(header_only_png(12_000, 12_000))
    assert reason.startswith("decompression bomb: 12000x12000 pixels")
    assert f"{DEFAULT_MAX_PIXELS:,}" in reason


def test_pils_own_bomb_error_becomes_bad_image(header_only_png):
    reason = bad_reason(header_only_png(40_000, 40_000))  # 1.6 Gpx: PIL raises before we see the size
    assert reason == f"decompression bomb: 1,600,000,000 pixels > limit {DEFAULT_MAX_PIXELS:,} (from the header)"


def test_pils_bomb_warning_as_error_becomes_bad_image(header_only_png):
    path = header_only_png(12_000, 12_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        reason = bad_reason(path, max_pixels=None)
    assert reason.startswith("decompression bomb")


# --- bad files ----------------------------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    assert bad_reason(path) == "empty file"


def test_truncated_jpeg(small_jpeg):
    path = small_jpeg(size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    assert bad_reason(path) == "truncated file"


def test_bad_image_holds_no_decoder_state(tmp_path, small_jpeg):
    path = small_jpeg(size=(64, 64))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(BadImage) as caught:
        load_image(path)
    # No chained PIL error: its traceback would keep the partly decoded image alive.
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    [(_, bad)] = list(load_images([path], workers=1))
    assert isinstance(bad, BadImage) and bad.__traceback__ is None


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture\n")
    assert bad_reason(path) == "not an image"


def test_postscript_renamed_jpg_is_not_opened(tmp_path):
    # EPS would make PIL start Ghostscript; tlcli never opens such formats.
    path = tmp_path / "doc.jpg"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    assert bad_reason(path) == "not an image"


def test_missing_file_folder_and_dangling_link(tmp_path):
    assert bad_reason(tmp_path / "nope.jpg") == "no such file"
    assert bad_reason(tmp_path) == "is a folder"
    link = tmp_path / "dangling.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    assert bad_reason(link) == "dangling symlink"
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    assert bad_reason(loop) == "symlink loop"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_named_like_an_image_does_not_hang(tmp_path):
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    assert bad_reason(path) == "not a regular file"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(small_jpeg):
    path = small_jpeg()
    path.chmod(0)
    try:
        assert bad_reason(path) == "permission denied"
    finally:
        path.chmod(0o644)


def test_non_utf8_file_name_loads_and_prints(save_image):
    path = save_image(os.fsdecode(b"bad\xff.png"), Image.new("RGB", (3, 3)))
    assert load_image(path).size == (3, 3)
    junk = path.parent / os.fsdecode(b"worse\xfe.png")
    junk.write_bytes(b"junk")
    with pytest.raises(BadImage) as caught:
        load_image(junk)
    message = str(caught.value)
    message.encode("utf-8")  # printable on a UTF-8 terminal: no lone surrogates
    assert display_path(junk) in message


def test_corrupted_bytes_raise_only_bad_image(tmp_path):
    """Flip and cut bytes of real files of several formats: load_image returns RGB or raises BadImage."""
    rng = random.Random(7)
    source = Image.fromarray(np.random.default_rng(7).integers(0, 255, (24, 20, 3), dtype=np.uint8))
    outcomes = set()
    for format_name in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"):
        buffer = io.BytesIO()
        source.save(buffer, format_name)
        original = buffer.getvalue()
        for trial in range(12):
            data = bytearray(original)
            if trial % 2:
                del data[rng.randrange(8, len(data)) :]
            else:
                for _ in range(4):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            path = tmp_path / f"fuzz.{format_name.lower()}"
            path.write_bytes(bytes(data))
            try:
                assert load_image(path).mode == "RGB"
                outcomes.add("ok")
            except BadImage as bad:
                assert bad.reason and "\n" not in bad.reason
                outcomes.add("bad")
    assert outcomes == {"ok", "bad"}  # the test did exercise both paths


def test_bad_image_pickles_for_worker_processes(tmp_path):
    bad = BadImage(tmp_path / "x.jpg", "truncated file")
    copy = pickle.loads(pickle.dumps(bad))
    assert (copy.path, copy.reason, str(copy)) == (bad.path, bad.reason, str(bad))


# --- many images --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 3])
def test_load_images_keeps_input_order_and_reports_bad_ones_in_place(small_jpeg, tmp_path, workers):
    paths = [small_jpeg(f"img{i}.jpg", size=(10 + i, 8)) for i in range(10)]
    paths.insert(4, tmp_path / "missing.jpg")

    results = list(load_images(paths, transform=lambda image: image.size, workers=workers))

    assert [index for index, _ in results] == list(range(11))
    assert isinstance(results[4][1], BadImage) and results[4][1].reason == "no such file"
    sizes = [value for _, value in results if not isinstance(value, BadImage)]
    assert sizes == [(10 + i, 8) for i in range(10)]


def test_load_images_reads_ahead_only_a_bounded_number_of_paths(small_jpeg):
    path = small_jpeg()
    taken = []

    def endless_paths():
        while True:
            taken.append(1)
            yield path

    stream = load_images(endless_paths(), workers=2)
    for _ in range(3):
        next(stream)
    stream.close()  # the consumer stops early: no hang, queued work dropped
    assert len(taken) <= 3 + 2 * 2 + 1


def test_load_images_transform_errors_propagate(small_jpeg):
    def broken(image):
        raise RuntimeError("bug in transform")

    with pytest.raises(RuntimeError, match="bug in transform"):
        list(load_images([small_jpeg()], transform=broken, workers=2))


def test_sources_module_imports_no_pil_numpy_or_torch():
    code = (
        "import sys, tlcli.data.sources; "
        "heavy = [m for m in ('PIL', 'numpy', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "import tlcli.data.images; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
