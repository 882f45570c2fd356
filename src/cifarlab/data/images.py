"""Decoding one picture file into a square 8-bit RGB array: the one decoder shared by
``cifarlab predict`` (pictures to classify, 32×32) and image-folder datasets
(:mod:`cifarlab.data.folders`, any side).

A picture is a regular file whose content is PNG, JPEG, WebP, GIF, BMP or TIFF
(:data:`PIL_FORMATS`: no other PIL decoder is ever tried, whatever the name says). A
picture that declares more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`) in its
header is refused before its pixels are decoded, so memory stays bounded whatever the file
claims; one smaller than :data:`MIN_SIDE` pixels on a side is refused rather than upscaled.

Each picture is decoded to 8-bit RGB honouring its mode and bit depth (:func:`to_rgb`:
16-bit and 32-bit samples scaled by their full range, transparency composited on white,
palettes expanded, CMYK converted; animated files give their first frame) and turned the
right way up from its EXIF orientation. Then (:func:`preprocess`) the resize rule, exactly:

1. **centre crop to the largest square**: a W×H picture keeps the square of side
   ``s = min(W, H)`` whose top-left corner is ``((W - s) // 2, (H - s) // 2)`` (an odd
   surplus leaves its extra pixel on the right or bottom);
2. **then resize** that square to ``size``×``size`` with PIL's BILINEAR filter, which is
   antialiased when shrinking (its support widens with the scale, as torchvision's
   ``Resize`` default does); a square already ``size`` on a side is not resampled.

This is *not* "resize the shorter side to ``size``, then centre crop" (torchvision's
``Resize(size)`` + ``CenterCrop(size)``): there the filter also reads pixels just outside
the kept square and the crop offset is rounded on the resized grid, so the two agree only
up to those border and rounding differences (exactly, for square pictures).
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cifarlab.errors import CifarlabError

# Accepted picture names, for named files and folder searches alike. .jfif: what Chrome on
# Windows long saved JPEGs as.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".webp", ".gif", ".bmp", ".tif", ".tiff")
ACCEPTED = "accepted: " + " ".join(IMAGE_SUFFIXES)
# The only PIL decoders tried, whatever the name says: nothing else (EPS, PSD, ...) is parsed.
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# 70 megapixels covers phone photos in 48/50/64 MP modes (a 64 MP one is 9248×6936 = 64.1 MP)
# and cameras up to 61 MP. Decoding one peaks at about 1.1 GB (measured: +0.98 GB RSS for
# an 8000×8000 RGBA PNG, the widest mode). Below PIL's 89.5 MP warning: PIL never warns
# about a picture we accept.
MAX_PIXELS = 70_000_000
# Transparent pixels are shown on white, as a browser or image viewer shows them on a page;
# black would turn a dark object on a transparent background into a silhouette.
ALPHA_BACKGROUND = (255, 255, 255)
MIN_SIDE = 8  # pixels: smaller pictures are refused, not upscaled
RESAMPLE = "BILINEAR"  # PIL filter for the resize (antialiased when shrinking)

_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_FILE_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


class ImageReadError(CifarlabError):
    """One picture could not be read or is unusable; the message is one line."""


def read_image(path: str | Path, size: int, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A picture file as uint8 (size, size, 3) RGB: decoded by :func:`to_rgb`, EXIF-rotated,
    centre-cropped to the largest square, resized (the module's rule).

    Only regular files are opened (never blocking on a FIFO), only the :data:`PIL_FORMATS`
    decoders are tried, and a header declaring more than ``max_pixels`` pixels (width ×
    height) is refused before any pixel data is decoded. Raises ImageReadError with a
    one-line reason for anything unreadable, too large or too small; no PIL warning is
    printed.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Our limit, checked below, is lower than PIL's: its warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open_regular_file(path) as f, Image.open(f, formats=PIL_FORMATS) as img:
                if img.size[0] * img.size[1] > max_pixels:  # Image.open read only the header
                    raise ImageReadError(_too_large(path, img.size, max_pixels))
                white = white_level(img)  # before EXIF rotation: a TIFF's tags are read here
                img.load()  # decode now: a truncated file fails here, not later
                ImageOps.exif_transpose(img, in_place=True)
                return preprocess(img, size, white)
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{path}: not a {FORMAT_NAMES} image (cannot identify the file's format)"
        ) from None
    except Image.DecompressionBombError:
        # PIL's own hard limit (twice its warning limit), hit while reading the header.
        raise ImageReadError(_too_large(path, None, max_pixels)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # PIL raises OSError for truncated or damaged data, SyntaxError for some bad headers.
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        raise ImageReadError(f"{path}: cannot read the image ({reason})") from None


def _too_large(path: Path, size: tuple[int, int] | None, max_pixels: int) -> str:
    declared = f"{size[0]}×{size[1]} pixels, " if size else ""
    return (
        f"{path}: refused: {declared}more than the {max_pixels // 10**6}-megapixel limit "
        "(shrink it first)"
    )


def _open_regular_file(path: Path) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file (symlinks followed), else
    ImageReadError saying what it is instead."""
    try:
        _require_regular(path, os.stat(path).st_mode)  # before opening: opening a device can act
        # O_NONBLOCK: had it become a FIFO since the stat, opening must not wait for a writer.
        # Reads from a regular file ignore the flag.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise ImageReadError(
                f"{path}: dangling symbolic link (to {target}, which does not exist)"
            ) from None
        raise ImageReadError(f"{path}: no such file or folder") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied (cannot open it for reading)") from None
    except OSError as exc:  # a symlink loop, a path through a file, ...
        raise ImageReadError(f"{path}: cannot open it ({exc.strerror or exc})") from None
    try:
        _require_regular(path, os.fstat(fd).st_mode)
    except ImageReadError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _require_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for is_kind, name in _FILE_KINDS if is_kind(mode)), "special file")
        raise ImageReadError(f"{path}: not a regular file ({kind})")


def white_level(img) -> float | None:
    """The sample value that means full white in a 16-bit, 32-bit or float grey PIL image
    (None for 8-bit modes).

    Integers (I;16*, I): the top of the file's own range where a TIFF states it
    (BitsPerSample, SampleFormat: a 12-bit TIFF opens as I;16 and is white at 4095), else
    of the mode (65535 for I;16*, int32 for I); negatives count as black, as in
    scikit-image's ``img_as_ubyte``. F: 1.0, the usual range of float pictures.
    """
    if img.mode == "F":
        return 1.0
    if img.mode != "I" and not img.mode.startswith("I;16"):
        return None
    tags = getattr(img, "tag_v2", None) or {}
    default_bits, default_format = (32, 2) if img.mode == "I" else (16, 1)
    bits = int(np.ravel(tags.get(258, default_bits))[0])  # BitsPerSample
    signed = int(np.ravel(tags.get(339, default_format))[0]) == 2  # SampleFormat 2: signed
    return 2.0 ** (bits - 1 if signed else bits) - 1


def to_rgb(img, white: float | None = None):
    """A PIL image of any mode as 8-bit RGB, honouring its bit depth and transparency.

    Grey with more than 8 bits (I;16, I;16B, I;16L, I;16N, I, F) is scaled so that
    ``white`` (default :func:`white_level`) becomes 255, rounded: a 16-bit picture reads
    exactly as its 8-bit equivalent (v·257 → v). Anything with alpha or a transparent
    colour (LA, PA, RGBA, P/L/RGB with a tRNS entry) is composited on
    :data:`ALPHA_BACKGROUND`. The rest (1, L, P, RGB, CMYK, YCbCr) is PIL's conversion:
    palettes expanded, CMYK as R = 255·(1−C)(1−K) (no ICC profile applied).
    """
    from PIL import Image

    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        scaled = np.asarray(img).astype(np.float32)  # our own copy: changed in place below
        np.nan_to_num(scaled, copy=False, nan=0.0)  # NaN: black, not an undefined cast
        scaled *= 255.0 / (white or white_level(img))
        grey = np.clip(np.rint(scaled, out=scaled), 0, 255, out=scaled).astype(np.uint8)
        if "transparency" in img.info:  # a 16-bit PNG's tRNS grey value
            grey[np.asarray(img) == img.info["transparency"]] = ALPHA_BACKGROUND[0]
        return Image.fromarray(grey).convert("RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        background = Image.new("RGBA", img.size, (*ALPHA_BACKGROUND, 255))
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")  # no needless copy
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def preprocess(img, size: int, white: float | None = None) -> np.ndarray:
    """A PIL image as uint8 (size, size, 3) RGB: centre-cropped to the largest square,
    converted by :func:`to_rgb` (``white`` is passed on), resized with BILINEAR (the
    module's rule). ImageReadError when a side is under :data:`MIN_SIDE` pixels."""
    from PIL import Image

    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageReadError(
            f"image is {w}×{h} pixels; need at least {MIN_SIDE}×{MIN_SIDE} (too small to classify)"
        )
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if w != h:  # crop first: converting the square alone saves memory (conversions are per pixel)
        img = img.crop((left, top, left + side, top + side))
    img = to_rgb(img, white)
    if side != size:
        img = img.resize((size, size), getattr(Image.Resampling, RESAMPLE))
    return np.asarray(img, dtype=np.uint8).copy()
