"""Classify your own pictures with a trained checkpoint.

A picture is a regular file named with one of :data:`IMAGE_SUFFIXES` (any case), whose
content is PNG, JPEG, WebP, GIF, BMP or TIFF; folders are searched recursively for such
names. A picture that declares more than :data:`MAX_PIXELS` pixels in its header is
refused before its pixels are decoded, so memory stays bounded whatever the file claims.

Each picture is decoded to 8-bit RGB honouring its mode and bit depth (:func:`to_rgb`:
16-bit and 32-bit samples scaled by their full range, transparency composited on white,
palettes expanded, CMYK converted; animated files give their first frame), turned the
right way up from its EXIF orientation, centre-cropped to the largest square and then
resized to 32×32 with PIL's BILINEAR filter (antialiased when shrinking, the same filter as
torchvision's ``Resize`` default; :mod:`cifarlab.data.images`, the decoder image-folder
datasets share, states the rule exactly), then normalised with the checkpoint's own mean and std. Pictures
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifarlab.calibration import apply_temperature

# The picture decoder is the data layer's (cifarlab.data.images, shared with image-folder
# datasets); ``cifarlab.predict`` names its constants and functions as before.
from cifarlab.data import images as _images
from cifarlab.data.batches import to_uint8_tensor
from cifarlab.data.images import (  # noqa: F401
    ACCEPTED,
    ALPHA_BACKGROUND,
    FORMAT_NAMES,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    MIN_SIDE,
    PIL_FORMATS,
    RESAMPLE,
    ImageReadError,
    to_rgb,
    white_level,
)

# The trained-model reader's (cifarlab.trained); ``cifarlab.predict`` names it as documented.
from cifarlab.trained import TrainedModel, load_trained_model  # noqa: F401

SIZE = 32  # the network's input side


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
    """A picture file as uint8 (size, size, 3) RGB (``size``: the run's data.image_size, 32
    for CIFAR): decoded by :func:`to_rgb`, EXIF-rotated, centre-cropped to the largest square,
    resized with BILINEAR
    (:func:`cifarlab.data.images.read_image`, whose docstring states the rule exactly).

    Only regular files are opened (never blocking on a FIFO), only the :data:`PIL_FORMATS`
    decoders are tried, and a header declaring more than :data:`MAX_PIXELS` pixels is
    refused before any pixel data is decoded. Raises ImageReadError with a one-line reason
    for anything unreadable, too large or too small; no PIL warning is printed.
    """
    return _images.read_image(path, size, max_pixels=MAX_PIXELS)


def preprocess(img, white: float | None = None, size: int = SIZE) -> np.ndarray:
    """A PIL image as uint8 (size, size, 3) RGB: centre-cropped to a square, converted by
    :func:`to_rgb` (``white`` is passed on), resized with BILINEAR."""
    return _images.preprocess(img, size, white)


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
