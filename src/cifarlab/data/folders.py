"""A user's own image folders as a dataset (``data.dataset = "folder"``): one folder of
pictures per class, read into :class:`~cifarlab.data.readers.LabelledImages`.

Two layouts, told apart by whether ``root`` holds both ``train/`` and ``test/``:

- ``root/train/<class>/*`` + ``root/test/<class>/*``: the test set is given; ``test/``
  must hold exactly the class folders of ``train/``;
- ``root/<class>/*``, a single tree: the test set is held out of it by the seeded,
  stratified split of :func:`cifarlab.data.split.split_train_val` (fraction
  ``test_fraction``, seed ``split_seed``; its "val" part is the test set), so every class
  gives the same share, within one image, and the same seed holds out the same images.

Classes are the class folders' names, sorted by code point (Python's ``sorted`` of the
names: ``"B" < "a" < "b"``, ``"class10" < "class2"``); label ``i`` is the ``i``-th name.
Within a split the images are in class order, then by file name (code point order).
Hidden entries (names starting with ``.``) are ignored everywhere, and so are plain
files beside the class folders; any number of classes from 2 up is accepted.

Every picture, of any size and mode, is decoded by :mod:`cifarlab.data.images` (the
decoder ``cifarlab predict`` uses, with the same rules): regular files only, PNG, JPEG,
WebP, GIF, BMP or TIFF content only, at most :data:`~cifarlab.data.images.MAX_PIXELS`
pixels declared in its header, at least :data:`~cifarlab.data.images.MIN_SIDE` pixels on
a side, any mode to 8-bit RGB, EXIF orientation applied, then centre-cropped to the
largest square and resized to ``image_size`` × ``image_size`` with PIL's BILINEAR filter
(antialiased when shrinking).

Each refusal is one :class:`~cifarlab.errors.DataError` line naming the path and what to
do: a file in a class folder that is not a picture (by its name, or content that does not
decode), a folder inside a class folder, a class folder with no picture, a class left
with no training image by the split, a dataset of one class, a folder with no class
folders, and no folder named at all. The decoded arrays are cached
(:mod:`cifarlab.data.cache`) under a key of every file's name, size and mtime, the class
folders, ``image_size`` and, for a single tree, ``split_seed`` and ``test_fraction``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cifarlab.data import cache
from cifarlab.data.images import IMAGE_SUFFIXES, ImageReadError, read_image
from cifarlab.data.readers import LabelledImages
from cifarlab.data.split import split_train_val
from cifarlab.errors import DataError

DATASET = "folder"
# Bump when what this module reads, or how it decodes, changes: old cache entries are
# then left unused.
READER_VERSION = 1
NO_FOLDER = "data.dataset = 'folder' needs data.source or --data-dir naming the folder"
_LAYOUTS = "<class>/ folders of images, or train/<class>/ + test/<class>/"


def load_image_folders(
    where: str | os.PathLike[str] | None,
    *,
    image_size: int = 32,
    split_seed: int = 42,
    test_fraction: float = 0.2,
    use_cache: bool = True,
) -> LabelledImages:
    """The image folders at ``where`` as a dataset named ``"folder"`` (see the module for
    the layouts, the class order, the resize rule and the refusals), through the
    decoded-array cache unless ``use_cache`` is off."""
    if where is None or str(where) in ("sample", "auto"):
        raise DataError(NO_FOLDER)
    root = Path(where).expanduser()
    if not root.is_dir():
        what = "not a folder" if os.path.lexists(root) else "no such folder"
        raise DataError(
            f"{root}: {what}; point data.source or --data-dir at a folder of {_LAYOUTS}"
        )
    split_layout = _split_layout(root)
    # The class folders are checked before the cache is asked: a class folder added or
    # removed since (even an empty one) changes the dataset, and the key names them.
    classes = _classes_of(root / "train" if split_layout else root)
    options: dict[str, object] = {"reader": READER_VERSION, "image_size": image_size}
    options["classes"] = classes
    if split_layout:
        _same_classes(root, classes, _classes_of(root / "test"))
        files = cache.tree_files
    else:
        options.update(split_seed=split_seed, test_fraction=test_fraction)
        files = lambda r: cache.tree_files(r, tuple(classes))  # noqa: E731
    key = cache.source_key(DATASET, root, files=files, options=options) if use_cache else None
    if key is not None:
        hit = cache.load_entry(key)
        if hit is not None:
            return hit
    if split_layout:
        data = _read_split_layout(root, classes, image_size)
    else:
        data = _read_single_tree(root, classes, image_size, split_seed, test_fraction)
    if key is not None:
        cache.save_entry(key, data, root)
    return data


def _split_layout(root: Path) -> bool:
    """True for train/ + test/; False for a single tree; a DataError for one of the two."""
    has = [(root / split).is_dir() for split in ("train", "test")]
    if all(has):
        return True
    if any(has):
        there, missing = ("train", "test") if has[0] else ("test", "train")
        raise DataError(
            f"{root}: has {there}/ but no {missing}/; add {missing}/<class>/ folders, "
            f"or put the class folders directly in {root} to hold out a test set by data.split_seed"
        )
    return False


def _class_names(folder: Path) -> list[str]:
    """The visible subfolders of ``folder``, sorted by code point (a DataError if it cannot
    be listed)."""
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError as exc:
        raise DataError(
            f"{folder}: cannot list it ({exc.strerror or exc}); check its permissions"
        ) from None


def _classes_of(folder: Path) -> list[str]:
    """The class folders of ``folder``, refused unless there are two or more."""
    names = _class_names(folder)
    if not names:
        raise DataError(
            f"{folder}: no class folders in it; make one folder of images per class ({_LAYOUTS})"
        )
    if len(names) == 1:
        raise DataError(
            f"{folder}: only one class folder ({names[0]}); a dataset needs 2 or more classes, "
            "add a folder of images for each other class"
        )
    return names


def _picture_files(class_dir: Path) -> list[Path]:
    """The picture files of one class folder, sorted by name; a DataError for anything else."""
    files = []
    try:
        with os.scandir(class_dir) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(
            f"{class_dir}: cannot list it ({exc.strerror or exc}); check its permissions"
        ) from None
    for entry in entries:
        path = class_dir / entry.name
        if entry.is_dir():
            raise DataError(
                f"{path}: a folder inside a class folder; a class folder holds picture files "
                "only: move its pictures up or remove it"
            )
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(
                f"{path}: not a picture (named {path.suffix or 'without a suffix'}; "
                f"accepted: {' '.join(IMAGE_SUFFIXES)}); remove it or move it out of {class_dir}"
            )
        files.append(path)
    if not files:
        raise DataError(
            f"{class_dir}: a class folder with no picture in it; add its pictures "
            f"({' '.join(IMAGE_SUFFIXES)}) or remove the folder"
        )
    return files


def _decode(files: list[tuple[Path, int]], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, S, S, 3) images and int64 (N,) labels of ``(path, label)`` pairs."""
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    labels = np.fromiter((label for _, label in files), dtype=np.int64, count=len(files))
    for i, (path, _) in enumerate(files):
        try:
            images[i] = read_image(path, image_size)
        except ImageReadError as exc:
            msg = str(exc)
            msg = msg if msg.startswith(str(path)) else f"{path}: {msg}"
            raise DataError(f"{msg}; replace it with a readable picture or remove it") from None
    return images, labels


def _listing(split_dir: Path, classes: list[str]) -> list[tuple[Path, int]]:
    return [(f, label) for label, c in enumerate(classes) for f in _picture_files(split_dir / c)]


def _describe(root: Path, layout: str, classes: list[str], image_size: int) -> str:
    return (
        f"image folders in {os.path.abspath(root)} ({layout}, {len(classes)} classes, "
        f"resized to {image_size}x{image_size})"
    )


def _same_classes(root: Path, classes: list[str], test_classes: list[str]) -> None:
    if test_classes != classes:
        only_test = sorted(set(test_classes) - set(classes))
        only_train = sorted(set(classes) - set(test_classes))
        raise DataError(
            f"{root / 'test'}: its class folders differ from train/'s (only in test/: "
            f"{', '.join(only_test) or 'none'}; only in train/: {', '.join(only_train) or 'none'}); "
            "give both the same class folders"
        )


def _read_split_layout(root: Path, classes: list[str], image_size: int) -> LabelledImages:
    train = _listing(root / "train", classes)
    test = _listing(root / "test", classes)
    return LabelledImages.from_splits(
        _decode(train, image_size),
        _decode(test, image_size),
        classes,
        source=_describe(root, "train/ + test/", classes, image_size),
        dataset=DATASET,
    )


def _read_single_tree(
    root: Path, classes: list[str], image_size: int, split_seed: int, test_fraction: float
) -> LabelledImages:
    files = _listing(root, classes)
    labels = np.fromiter((label for _, label in files), dtype=np.int64, count=len(files))
    train_idx, test_idx = split_train_val(labels, test_fraction, split_seed)
    left = np.bincount(labels[train_idx], minlength=len(classes))
    if (left == 0).any():
        empty = classes[int(np.argmax(left == 0))]
        raise DataError(
            f"{root / empty}: too few pictures to hold out a test share of {test_fraction:g} "
            "and still train on the class; add pictures or lower data.test_fraction"
        )
    images, _ = _decode(files, image_size)
    return LabelledImages(
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        tuple(classes),
        source=_describe(
            root,
            f"one tree, test set {test_fraction:g} of each class held out by split seed {split_seed}",
            classes,
            image_size,
        ),
        dataset=DATASET,
    )
