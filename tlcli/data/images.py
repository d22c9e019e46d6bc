"""Decode image files into RGB, one at a time or many in parallel, without ever raising anything but
``BadImage`` for a bad file.

What "correctly" means here:
- EXIF orientation is applied (a phone photo taken upright comes out upright);
- transparency (alpha channels, palette or tRNS transparency) is composited onto white, so a transparent
  background does not turn black;
- 16-bit and 32-bit grey images are scaled to 8 bits, not clipped (PIL's ``convert`` clips: a 16-bit
  gradient would come out almost all white);
- images larger than ``max_pixels`` are refused from the header, before any pixel is decoded.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from tlcli.data.common import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, BadImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "BadImage",
    "default_workers",
    "load_image",
    "load_images",
    "to_rgb",
]

# Formats PIL may identify a file as (JPEG covers MPO). Anything else (EPS runs Ghostscript, PSD, ICO, ...)
# is "not an image" for tlcli: a smaller attack surface, no surprising subprocess for a renamed file.
# TGA last: it has no magic number, so it must not claim files before the others had their look.
ALLOWED_FORMATS = (
    "JPEG", "PNG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM", "JPEG2000", "AVIF", "QOI", "TGA",
)  # fmt: skip

# load_image checks the size itself and reports it as BadImage; PIL's warning for the same size would
# only print a second, less clear line. (Where a stricter filter turns it into an error, it is caught.)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# PIL's own warnings about damaged files ("Corrupt EXIF data", "Truncated File Read") name no file; a file
# that fails is reported as BadImage with its name instead, and one that loads needs no line at all.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def load_image(path: os.PathLike | str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The file at ``path`` fully decoded as an RGB image, upright per its EXIF orientation.

    Raises ``BadImage`` (and nothing else) for a missing, unreadable, empty, truncated, corrupt, oversized
    or non-image file. ``max_pixels=None`` turns tlcli's size check off (PIL's own limit still applies).
    """
    path = path if isinstance(path, Path) else Path(os.fsdecode(path))
    try:
        with _open_regular_file(path) as handle:
            return _decode(handle, path, max_pixels)
    except BadImage:
        raise
    except Exception as error:  # corrupt data raises OSError, ValueError, SyntaxError, struct.error, ...
        reason = describe_decode_error(error)
    # Raised outside the except block on purpose: a chained error would keep PIL's frames, and with them
    # a partly decoded image, alive as long as the BadImage is (a BadFiles list may hold thousands).
    raise BadImage(path, reason)


def load_images(
    paths: Iterable[os.PathLike | str],
    *,
    transform: Callable[[Image.Image], Any] | None = None,
    workers: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, transform(image))`` for each path, or ``(index, BadImage)`` for a bad file, in input
    order.

    Decoding runs on ``workers`` threads (default: ``default_workers()``; ``0`` decodes in the calling
    thread); PIL releases the GIL while decoding, so threads scale. At most two images per worker are
    decoded ahead of the consumer, so memory stays flat however many paths come in (``paths`` may be a
    lazy iterator). ``transform`` runs on the worker threads and must be thread-safe; an exception it
    raises is a bug, not a bad file, and propagates to the caller.
    """

    def decode(path):
        try:
            image = load_image(path, max_pixels=max_pixels)
        except BadImage as bad:
            return bad.with_traceback(None)  # kept by the caller: hold no frames
        return transform(image) if transform is not None else image

    workers = default_workers() if workers is None else workers
    if workers <= 0:
        for index, path in enumerate(paths):
            yield index, decode(path)
        return

    look_ahead = 2 * workers  # enough to keep every worker busy; each waiting image costs memory
    pending: deque[tuple[int, Future]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tlcli-decode")
    try:
        for index, path in enumerate(paths):
            pending.append((index, pool.submit(decode, path)))
            if len(pending) >= look_ahead:
                done_index, future = pending.popleft()
                yield done_index, future.result()
        while pending:
            done_index, future = pending.popleft()
            yield done_index, future.result()
    finally:
        # The consumer may stop early (break, Ctrl-C): drop queued work instead of decoding it.
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """Decoding threads to use: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: transparency composited onto white, high bit depths scaled (not clipped).

    May return ``image`` itself when it is already plain RGB.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _high_depth_to_rgb(image)
    if mode in _ALPHA_MODES or image.info.get("transparency") is not None:
        return _composite_on_white(image.convert("RGBA"))
    if mode == "RGB":
        return image
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, HSV


def describe_decode_error(error: BaseException) -> str:
    """Short text for people naming what is wrong with a file, from whatever PIL raised."""
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"decompression bomb: {error}"
    if isinstance(error, UnidentifiedImageError):
        return "not an image"
    if isinstance(error, MemoryError):
        return "too large to decode (out of memory)"
    text = str(error)
    lowered = text.lower()
    if isinstance(error, EOFError) or "truncated" in lowered:
        return "truncated file"
    if "broken data stream" in lowered:
        return "truncated or corrupt data"
    if "decompressed data too large" in lowered:
        return f"decompression bomb: {text}"
    detail = text or type(error).__name__
    if len(detail) > 100:
        detail = detail[:97] + "..."
    return f"corrupt image ({detail})"


def _open_regular_file(path: Path):
    # O_NONBLOCK: opening a FIFO named like an image must not wait forever for a writer. Checking the type
    # on the open descriptor (not before opening) leaves no window to swap the file.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BadImage(path, "dangling symlink" if os.path.islink(path) else "no such file") from None
    except PermissionError:
        raise BadImage(path, "permission denied") from None
    except IsADirectoryError:
        raise BadImage(path, "is a folder") from None
    except OSError as error:
        raise BadImage(path, _describe_os_error(error)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BadImage(path, "is a folder")
        if not stat.S_ISREG(info.st_mode):
            raise BadImage(path, "not a regular file")
        if info.st_size == 0:
            raise BadImage(path, "empty file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _describe_os_error(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno == errno.ENOTDIR:
        return "no such file"
    return (error.strerror or str(error)).lower()


@lru_cache(maxsize=1)
def _openable_formats() -> tuple[str, ...]:
    # Only those this PIL build has (AVIF and JPEG2000 depend on optional libraries); PIL raises
    # KeyError for an unknown name.
    Image.init()
    return tuple(name for name in ALLOWED_FORMATS if name in Image.OPEN)


def _decode(handle, path: Path, max_pixels: int | None) -> Image.Image:
    try:
        image = Image.open(handle, formats=_openable_formats())
    except Image.DecompressionBombError as error:
        # PIL's own (global) limit struck first, before the size could be read here: say it our way.
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        limit = min(n for n in (max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0)) if n)
        raise BadImage(path, f"decompression bomb: {size} > limit {limit:,} (from the header)") from error
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadImage(path, "image has no pixels")
    if max_pixels is not None and width * height > max_pixels:
        raise BadImage(
            path, f"decompression bomb: {width}x{height} pixels > limit {max_pixels:,} (from the header)"
        )
    image.load()
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(_exif_orientation(image))
    rgb = to_rgb(image)
    # Transposing after the conversion: same result, and the RGB copy is the one we keep anyway.
    return rgb.transpose(transpose) if transpose is not None else rgb


def _exif_orientation(image: Image.Image) -> int:
    # A broken EXIF block should not cost the pixels: keep the image, unrotated.
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:
        return 1


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    values = np.asarray(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = _scale_16_bit(values)
    elif image.mode == "I":
        # 16-bit PNG/PGM/TIFF data often arrives as mode "I" with values in 0..65535.
        low, high = int(values.min()), int(values.max())
        grey = _scale_16_bit(values) if low >= 0 and high <= 65535 else _stretch(values)
    else:  # "F": float data; 0..1 is the usual convention, anything else is stretched
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            grey = np.rint(values * 255.0).astype(np.uint8)
        else:
            grey = _stretch(values)
    return Image.fromarray(grey).convert("RGB")


def _scale_16_bit(values: np.ndarray) -> np.ndarray:
    # round(v * 255 / 65535) == round(v / 257): 0 -> 0, 32768 -> 128, 65535 -> 255.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


class ItemProgress:
    """Progress of a long per-item step (decoding, feature extraction) on stderr: a rich bar on a terminal,
    a plain ``label: done/total`` line every few seconds otherwise (logs, ``nohup``, ``--tui`` without a
    terminal), nothing when ``quiet``. Use as a context manager; call ``update(done)``."""

    def __init__(self, label: str, total: int, quiet: bool = False, plain_every_s: float = 5.0):
        from tlcli.console.output import stderr_is_terminal

        self.label, self.total, self.quiet = label, total, quiet or total == 0
        self.plain_every_s = plain_every_s
        self._rich = stderr_is_terminal() and not self.quiet
        self._bar = self._task = None
        self._last_plain = 0.0
        self._done = 0

    def __enter__(self) -> "ItemProgress":
        import time

        self._last_plain = time.time()
        if self._rich:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            from tlcli.console.output import stderr_console

            self._bar = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=stderr_console(), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def update(self, done: int) -> None:
        import time

        self._done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
        elif not self.quiet and time.time() - self._last_plain >= self.plain_every_s:
            self._last_plain = time.time()
            print(f"{self.label}: {done}/{self.total}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
