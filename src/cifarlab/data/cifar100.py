"""CIFAR-100: find it, read it (three forms), cache it, or download it.

One concern: CIFAR-100 from disk to :class:`~cifarlab.data.readers.LabelledImages`, with
its fine labels (``dataset="cifar100"``, 100 classes) or its coarse ones
(``"cifar100-coarse"``, the 20 superclasses). The forms, as for CIFAR-10
(:mod:`cifarlab.data.readers`, whose helpers this module shares):

- the official python layout, a ``cifar-100-python/`` folder (``train``, ``test``, ``meta``),
  read with the restricted unpickler, each file's md5 verified against the known copies
  (:data:`cifarlab.data.checksums.KNOWN_COPIES_100`, or the folder's own ``MD5SUMS``);
- the official ``cifar-100-python.tar.gz``, read in place member by member;
- image folders ``train/<fine class>/*.png`` + ``test/<fine class>/...`` with exactly the
  100 fine class names; their coarse labels come from :data:`SUPERCLASSES`.

Fine labels 0..99 are the fine names in alphabetical order, coarse labels 0..19 the
superclass names in alphabetical order, as in the official ``meta``. A python-layout
copy must name exactly these classes, and every image's coarse label must be its fine
class's superclass, so one decoded (fine) cache entry serves both label kinds.

Where the data is, first match wins: the ``where`` argument (``"sample"`` is the bundled
sample), the ``CIFARLAB_CIFAR100`` environment variable, then ``cache_dir()/cifar100``,
where the official archive is downloaded when allowed. A location named explicitly is the
only place looked.
"""

from __future__ import annotations

import os
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cifarlab.data import cache
from cifarlab.data import download as _download
from cifarlab.data.checksums import (
    KNOWN_COPIES_100,
    RECORD_HINT_100,
    SUMS_FILE,
    md5_hex,
    verify_copy,
)
from cifarlab.data.locate import Locator, counts, find_or_fetch, form_at, not_found_in
from cifarlab.data.readers import (
    LabelledImages,
    class_folders,
    member_key,
    read_split,
    scan_tarball,
    str_keys,
    to_hwc,
    unpickle_checked,
)
from cifarlab.data.safe_pickle import safe_loads
from cifarlab.errors import DataError

KIND = "CIFAR-100"
FOLDER_NAME = "cifar-100-python"
TARBALL_NAME = "cifar-100-python.tar.gz"
TRAIN_FILE, TEST_FILE, META_FILE = "train", "test", "meta"
REQUIRED_FILES = (META_FILE, TRAIN_FILE, TEST_FILE)
ENV = "CIFARLAB_CIFAR100"
SAMPLE = "sample"
_ROW = 32 * 32 * 3

# The official 20 superclasses (coarse_label_names, alphabetical) and their 5 fine classes each.
SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
COARSE_CLASSES: tuple[str, ...] = tuple(sorted(SUPERCLASSES))
FINE_CLASSES: tuple[str, ...] = tuple(sorted(f for fs in SUPERCLASSES.values() for f in fs))
# FINE_TO_COARSE[fine label] is its coarse label.
FINE_TO_COARSE: np.ndarray = np.array(
    [
        next(c for c, name in enumerate(COARSE_CLASSES) if fine in SUPERCLASSES[name])
        for fine in FINE_CLASSES
    ],
    dtype=np.int64,
)
FINE_TO_COARSE.setflags(write=False)


# --- the python layout -------------------------------------------------------------------


def parse_meta(obj: Any, name: str) -> tuple[str, ...]:
    """The fine class names of an unpickled ``meta``; they and the coarse names must be
    CIFAR-100's own (:data:`FINE_CLASSES`, :data:`COARSE_CLASSES`)."""
    meta = str_keys(obj, name, KIND)
    for key, expected in (
        ("fine_label_names", FINE_CLASSES),
        ("coarse_label_names", COARSE_CLASSES),
    ):
        names = meta.get(key)
        if not isinstance(names, list | tuple):
            raise DataError(
                f"{name}: no {key} list, not a {KIND} meta file; replace it with a clean copy"
            )
        got = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
        if got != expected:
            raise DataError(
                f"{name}: {key} are not CIFAR-100's {len(expected)} names in alphabetical order; "
                "replace it with a clean copy"
            )
    return FINE_CLASSES


def parse_batch(obj: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(data, fine labels)`` of an unpickled ``train`` or ``test``: uint8 (n, 3072) and
    int64 (n,), validated; each coarse label must be its fine class's superclass."""
    batch = str_keys(obj, name, KIND)
    fix = "replace it with a clean copy"
    for key in ("data", "fine_labels", "coarse_labels"):
        if key not in batch:
            raise DataError(f"{name}: no '{key}' entry, not a {KIND} batch; {fix}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        what = f"{data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{name}: data must be a uint8 array, got {what}; {fix}")
    if data.ndim != 2 or data.shape[1] != _ROW:
        raise DataError(f"{name}: data has shape {data.shape}, expected (n, {_ROW}); {fix}")
    labels = {}
    for key, count in (("fine_labels", 100), ("coarse_labels", 20)):
        try:
            lab = np.asarray(batch[key], dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{name}: {key} are not integers; {fix}") from None
        if lab.ndim != 1 or len(lab) != len(data):
            raise DataError(f"{name}: {lab.size} {key} for {len(data)} images; {fix}")
        if len(lab) and (lab.min() < 0 or lab.max() >= count):
            bad = lab[(lab < 0) | (lab >= count)][0]
            raise DataError(f"{name}: {key[:-1]} {bad} is out of range 0..{count - 1}; {fix}")
        labels[key] = lab
    fine, coarse = labels["fine_labels"], labels["coarse_labels"]
    wrong = np.flatnonzero(FINE_TO_COARSE[fine] != coarse)
    if len(wrong):
        i = int(wrong[0])
        raise DataError(
            f"{name}: image {i} is a {FINE_CLASSES[fine[i]]} with coarse label {coarse[i]}, not "
            f"{FINE_TO_COARSE[fine[i]]} ({COARSE_CLASSES[FINE_TO_COARSE[fine[i]]]}); {fix}"
        )
    return data, fine


def _unpickle(raw: bytes, name: str) -> Any:
    return unpickle_checked(lambda: safe_loads(raw, name=name, kind=KIND), name, KIND)


def read_python_dir(folder: Path) -> LabelledImages:
    """Read a ``cifar-100-python`` folder (train, test, meta) with its fine labels.

    Every file is parsed (a broken one is named with what is wrong), then the three md5
    sums must all match one known copy, as for CIFAR-10.
    """
    folder = Path(folder)
    for fname in REQUIRED_FILES:
        if not (folder / fname).is_file():
            raise DataError(
                f"{folder / fname}: missing (a {FOLDER_NAME} folder needs train, test and meta); "
                "restore it from a clean copy"
            )
    sums: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for fname in REQUIRED_FILES:
        path = folder / fname
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(
                f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
            ) from None
        sums[fname] = md5_hex(raw)
        obj = _unpickle(raw, str(path))
        del raw
        parse = parse_meta if fname == META_FILE else parse_batch
        parsed[fname] = parse(obj, str(path))
    verify_copy(folder, sums, known=KNOWN_COPIES_100, dataset=KIND, record_hint=RECORD_HINT_100)
    return _images(parsed, f"{KIND} python batches in {os.path.abspath(folder)}")


def _images(parsed: dict[str, Any], source: str) -> LabelledImages:
    return LabelledImages.from_splits(
        to_hwc([parsed[TRAIN_FILE]]),
        to_hwc([parsed[TEST_FILE]]),
        parsed[META_FILE],
        source=source,
        dataset="cifar100",
    )


# --- the official tarball ----------------------------------------------------------------


def _member_key(name: str) -> str | None:
    """The file a member stands for (``cifar-100-python/x`` or top-level ``x``), or None."""
    return member_key(name, FOLDER_NAME, REQUIRED_FILES)


def read_tarball(path: Path) -> LabelledImages:
    """Read ``cifar-100-python.tar.gz`` in place (fine labels), as CIFAR-10's archive is
    read (:func:`cifarlab.data.readers.scan_tarball`: a hostile member refuses the whole
    archive, the gzip CRC is checked to the end)."""
    path = Path(path)
    redo = f"download {TARBALL_NAME} again"
    parsed: dict[str, Any] = {}

    def use(key: str, name: str, raw: bytes) -> None:
        parse = parse_meta if key == META_FILE else parse_batch
        parsed[key] = parse(_unpickle(raw, name), name)

    scan_tarball(path, _member_key, use, redo)
    for fname in REQUIRED_FILES:
        if fname not in parsed:
            raise DataError(f"{path}: member {FOLDER_NAME}/{fname} is missing; {redo}")
    return _images(parsed, f"{KIND} archive {os.path.abspath(path)}")


# --- image folders -----------------------------------------------------------------------


def read_image_folders(root: Path) -> LabelledImages:
    """Read ``root/train/<fine class>/*`` and ``root/test/<fine class>/*`` (32×32 RGB); the
    class folders must be named exactly the 100 fine classes."""
    root = Path(root)
    for split in ("train", "test"):
        names = tuple(class_folders(root / split, expected=len(FINE_CLASSES)))
        if names != FINE_CLASSES:
            odd = sorted(set(names) - set(FINE_CLASSES))
            raise DataError(
                f"{root / split / odd[0]}: not a CIFAR-100 fine class (the folders must be named "
                "apple, aquarium_fish, ..., worm); rename it"
            )
    return LabelledImages.from_splits(
        read_split(root / "train", list(FINE_CLASSES)),
        read_split(root / "test", list(FINE_CLASSES)),
        FINE_CLASSES,
        source=f"{KIND} image folders in {os.path.abspath(root)} (train/ + test/)",
        dataset="cifar100",
    )


# --- where it is -------------------------------------------------------------------------


def sample_dir() -> Path:
    """The bundled sample's ``cifar-100-python`` folder (1,000 train / 300 test images)."""
    return Path(str(resources.files("cifarlab.data") / "sample100" / FOLDER_NAME))


def find_form(path: Path) -> tuple[str, Path] | None:
    """Which form of CIFAR-100 ``path`` is or holds: ``(form, where)``, or None
    ("python", "tarball" or "images"; preference follows reading speed)."""
    return form_at(path, FOLDER_NAME, REQUIRED_FILES, TARBALL_NAME, is_there=Path.is_file)


_READERS = {"python": read_python_dir, "tarball": read_tarball, "images": read_image_folders}


def _files(form: str, root: Path) -> list[Path]:
    """The files a form's reader reads (what the cache key covers)."""
    if form == "python":
        sums = root / SUMS_FILE  # a user's own sums are part of what the reader checked
        return [*(root / f for f in REQUIRED_FILES), *([sums] if os.path.lexists(sums) else [])]
    if form == "tarball":
        return [root]
    return cache.tree_files(root)


def read_form(form: str, path: Path, *, use_cache: bool = True) -> LabelledImages:
    """Read one form at ``path`` (fine labels), through the decoded-array cache unless
    ``use_cache`` is off. One entry serves both label kinds (see :func:`as_coarse`)."""
    key = None
    if use_cache:
        key = cache.source_key(
            form,
            path,
            files=lambda root: _files(form, root),
            options={"dataset": "cifar100", "labels": "fine"},
        )
    if key is not None:
        hit = cache.load_entry(key)
        if hit is not None and hit.dataset == "cifar100" and hit.classes == FINE_CLASSES:
            return hit
    data = _READERS[form](path)
    if key is not None:
        cache.save_entry(key, data, path)
    return data


def as_coarse(data: LabelledImages) -> LabelledImages:
    """Fine-labelled CIFAR-100 relabelled with its 20 superclasses (``"cifar100-coarse"``)."""
    return replace(
        data,
        train_labels=FINE_TO_COARSE[data.train_labels],
        test_labels=FINE_TO_COARSE[data.test_labels],
        classes=COARSE_CLASSES,
        dataset="cifar100-coarse",
    )


def load_sample() -> LabelledImages:
    """The bundled CIFAR-100 sample (fine labels), never cached: it reads in milliseconds."""
    data = read_python_dir(sample_dir())
    return replace(
        data, source=f"bundled sample ({counts(data)}) in {sample_dir()}", is_sample=True
    )


def _not_found(path: Path, origin: str) -> str:
    return not_found_in(path, origin, FOLDER_NAME, TARBALL_NAME)


LOCATOR = Locator(
    kind=KIND,
    env=ENV,
    home="cifar100",
    tarball=TARBALL_NAME,
    find_form=lambda path: find_form(path),
    read_form=lambda form, path, *, use_cache=True: read_form(form, path, use_cache=use_cache),
    load_sample=lambda: load_sample(),
    not_found=lambda path, origin: _not_found(path, origin),
    # Module attributes, read at call time, so tests can serve a local archive.
    fetch=lambda home, progress: _download.download_archive(
        home,
        url=_download.CIFAR100_URL,
        md5=_download.CIFAR100_MD5,
        filename=TARBALL_NAME,
        dataset=KIND,
        progress=progress,
    ),
)


def load_cifar100(
    where: str | os.PathLike[str] | None = None,
    *,
    coarse: bool = False,
    download: bool = True,
    use_cache: bool = True,
    fallback_to_sample: bool = False,
    progress: bool = True,
) -> LabelledImages:
    """Load CIFAR-100 as numpy arrays (see the module docstring for where it looks).

    ``coarse``: the 20 superclass labels (``dataset="cifar100-coarse"``) instead of the 100
    fine ones (``"cifar100"``). ``download``: fetch the official archive into
    ``cache_dir()/cifar100`` when no location is given and none is there.
    ``fallback_to_sample``: when nothing is found or downloaded, return the bundled sample
    (its ``source`` says why) instead of raising. A damaged copy always raises DataError.
    """
    data = find_or_fetch(
        LOCATOR,
        where,
        download=download,
        use_cache=use_cache,
        fallback_to_sample=fallback_to_sample,
        progress=progress,
    )
    return as_coarse(data) if coarse else data
