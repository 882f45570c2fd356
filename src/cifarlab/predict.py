"""Classify your own pictures with a trained checkpoint.

A picture is a regular file named with one of :data:`IMAGE_SUFFIXES` (any case), whose
content is PNG, JPEG, WebP, GIF, BMP or TIFF; folders are searched recursively for such
names. A picture that declares more than :data:`MAX_PIXELS` pixels in its header is
refused before its pixels are decoded, so memory stays bounded whatever the file claims.

Each picture is decoded to 8-bit RGB honouring its mode and bit depth (:func:`to_rgb`:
16-bit and 32-bit samples scaled by their full range, transparency composited on white,
palettes expanded, CMYK converted; animated files give their first frame), turned the
right way up from its EXIF orientation, centre-cropped to a square and resized to 32×32
with PIL's BILINEAR filter (antialiased when shrinking, the same filter as torchvision's
``Resize`` default), then normalised with the checkpoint's own mean and std. Pictures
smaller than :data:`MIN_SIDE` pixels on a side are refused: a 1×1 or 4×4 image carries no
object to recognise, and upscaling it would only produce a confident-looking guess.

    >>> from cifarlab.predict import load_trained_model, predict_paths
    >>> trained = load_trained_model("runs/seed-improved-seed0")
    >>> results, errors = predict_paths(trained, ["my_cat.jpg", "photos/"], top_k=3)

Probabilities are the softmax of the logits divided by the run's temperature when
``cifarlab evaluate --calibrate`` stored one beside the checkpoint (temperature.json) for
this checkpoint's step; a temperature fitted for another step is ignored, and
``TrainedModel.temperature_note`` says which of the two happened.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from cifarlab.calibration import apply_temperature
from cifarlab.data.batches import to_uint8_tensor
from cifarlab.errors import CifarlabError

# The trained-model reader's (cifarlab.trained); ``cifarlab.predict`` names it as documented.
from cifarlab.trained import TrainedModel, load_trained_model  # noqa: F401

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
SIZE = 32  # the network's input side
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
    """One input picture could not be read or is unusable (the others still run)."""


def collect_images(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders (recursively, sorted) into picture files; named files are kept as given.

    A named path or a folder entry counts as a picture by its name (:data:`IMAGE_SUFFIXES`,
    any case; hidden files skipped); what it really is gets checked by :func:`read_image`,
    so a FIFO named ``x.png`` is reported as a FIFO, not skipped. Returns (files, errors)
    where errors are (path, reason) for named paths that are missing or not named like a
    picture, folders holding no picture, and subfolders that cannot be listed.
    """
    files: list[Path] = []
    errors: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found, unlisted = _walk_pictures(path)
            if not found and not unlisted:
                errors.append((str(path), f"a folder with no picture files in it ({ACCEPTED})"))
            files.extend(found)
            errors.extend(unlisted)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(path)
        elif not os.path.lexists(path):
            errors.append((str(path), "no such file or folder"))
        else:
            errors.append((str(path), f"not named like a picture ({ACCEPTED})"))
    return files, errors


def _walk_pictures(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every non-hidden entry named like a picture under ``folder`` that is not a folder,
    sorted, and (folder, reason) for subfolders that cannot be listed."""
    found: list[Path] = []
    errors: list[tuple[str, str]] = []

    def unlisted(exc: OSError) -> None:
        errors.append((str(exc.filename), f"cannot list this folder ({exc.strerror})"))

    # os.walk puts FIFOs, devices and dangling links with the files; symlinked folders are
    # not followed (no loops).
    for root, _dirs, names in os.walk(folder, onerror=unlisted):
        found.extend(
            Path(root, name)
            for name in names
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(found), errors


def read_image(path: str | Path, size: int = SIZE) -> np.ndarray:
    """A picture file as uint8 (size, size, 3) RGB: decoded by :func:`to_rgb`, EXIF-rotated,
    centre-cropped, resized (``size``: the run's data.image_size, 32 for CIFAR).

    Only regular files are opened (never blocking on a FIFO), only the :data:`PIL_FORMATS`
    decoders are tried, and a header declaring more than :data:`MAX_PIXELS` pixels is
    refused before any pixel data is decoded. Raises ImageReadError with a one-line reason
    for anything unreadable, too large or too small; no PIL warning is printed.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Our limit, checked below, is lower than PIL's: its warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open_regular_file(path) as f, Image.open(f, formats=PIL_FORMATS) as img:
                if img.size[0] * img.size[1] > MAX_PIXELS:  # Image.open read only the header
                    raise ImageReadError(_too_large(path, img.size))
                white = white_level(img)  # before EXIF rotation: a TIFF's tags are read here
                img.load()  # decode now: a truncated file fails here, not later
                ImageOps.exif_transpose(img, in_place=True)
                return preprocess(img, white, size)
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{path}: not a {FORMAT_NAMES} image (cannot identify the file's format)"
        ) from None
    except Image.DecompressionBombError:
        # PIL's own hard limit (twice its warning limit), hit while reading the header.
        raise ImageReadError(_too_large(path, None)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # PIL raises OSError for truncated or damaged data, SyntaxError for some bad headers.
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        raise ImageReadError(f"{path}: cannot read the image ({reason})") from None


def _too_large(path: Path, size: tuple[int, int] | None) -> str:
    declared = f"{size[0]}×{size[1]} pixels, " if size else ""
    return (
        f"{path}: refused: {declared}more than the {MAX_PIXELS // 10**6}-megapixel limit "
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


def preprocess(img, white: float | None = None, size: int = SIZE) -> np.ndarray:
    """A PIL image as uint8 (size, size, 3) RGB: centre-cropped to a square, converted by
    :func:`to_rgb` (``white`` is passed on), resized with BILINEAR."""
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


def predict_arrays(trained: TrainedModel, images: np.ndarray) -> np.ndarray:
    """Class probabilities (N, classes) for uint8 (N, 32, 32, 3) RGB images (with the
    model's temperature, when it has one)."""
    if len(images) == 0:
        return np.zeros((0, len(trained.classes)), dtype=np.float32)
    x = to_uint8_tensor(np.ascontiguousarray(images), trained.device)
    logits = trained.logits(x, batch_size=256)
    if trained.temperature is not None:
        logits = apply_temperature(logits, trained.temperature)
    return torch.softmax(logits, dim=1).cpu().numpy()


def top_classes(probs: np.ndarray, classes: list[str], k: int) -> list[dict[str, Any]]:
    """The k most likely classes of one probability vector, most likely first."""
    k = max(1, min(k, len(classes)))
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"class": classes[i], "index": int(i), "probability": float(probs[i])} for i in order]


def predict_paths(
    trained: TrainedModel, paths: list[str | Path], top_k: int = 3
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Predict every picture under ``paths``; a bad file becomes an error entry, not an exception.

    Returns (results, errors): results are ``{"file", "top": [{"class", "index",
    "probability"}...]}`` in input order; errors are ``{"file", "error"}`` with a
    one-line message.
    """
    files, missing = collect_images(paths)
    errors = [{"file": p, "error": f"{p}: {why}"} for p, why in missing]
    good: list[tuple[Path, np.ndarray]] = []
    for f in files:
        try:
            good.append((f, read_image(f, trained.recipe.data.image_size)))
        except ImageReadError as exc:
            msg = str(exc)
            errors.append(
                {"file": str(f), "error": msg if msg.startswith(str(f)) else f"{f}: {msg}"}
            )
    probs = predict_arrays(trained, np.stack([a for _, a in good]) if good else np.zeros((0,)))
    results = [
        {"file": str(f), "top": top_classes(p, trained.classes, top_k)}
        for (f, _), p in zip(good, probs, strict=True)
    ]
    return results, errors
