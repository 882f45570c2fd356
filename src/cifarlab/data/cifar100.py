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
    verify_copy,
)
from cifarlab.data.locate import Locator, find_or_fetch, form_at
from cifarlab.data.readers import (
    LabelledImages,
    class_folders,
    parse_rows,
    read_members,
    read_pickles,
    read_split,
    str_keys,
    to_hwc,
)
from cifarlab.errors import DataError

KIND = "CIFAR-100"
FOLDER_NAME = "cifar-100-python"
TARBALL_NAME = "cifar-100-python.tar.gz"
TRAIN_FILE, TEST_FILE, META_FILE = "train", "test", "meta"
REQUIRED_FILES = (META_FILE, TRAIN_FILE, TEST_FILE)
ENV = "CIFARLAB_CIFAR100"

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
    data, labels = parse_rows(obj, name, KIND, {"fine_labels": 100, "coarse_labels": 20})
    fine, coarse = labels["fine_labels"], labels["coarse_labels"]
    wrong = np.flatnonzero(FINE_TO_COARSE[fine] != coarse)
    if len(wrong):
        i = int(wrong[0])
        raise DataError(
            f"{name}: image {i} is a {FINE_CLASSES[fine[i]]} with coarse label {coarse[i]}, not "
            f"{FINE_TO_COARSE[fine[i]]} ({COARSE_CLASSES[FINE_TO_COARSE[fine[i]]]}); "
            "replace it with a clean copy"
        )
    return data, fine


def _parse(fname: str, obj: Any, name: str) -> Any:
    return parse_meta(obj, name) if fname == META_FILE else parse_batch(obj, name)


def read_python_dir(folder: Path) -> LabelledImages:
    """Read a ``cifar-100-python`` folder (train, test, meta) with its fine labels.

    Every file is parsed (a broken one is named with what is wrong), then the three md5
    sums must all match one known copy, as for CIFAR-10.
    """
    folder = Path(folder)
    needs = f"a {FOLDER_NAME} folder needs train, test and meta"
    parsed, sums = read_pickles(folder, REQUIRED_FILES, _parse, KIND, needs)
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


def read_tarball(path: Path) -> LabelledImages:
    """Read ``cifar-100-python.tar.gz`` in place (fine labels), as CIFAR-10's archive is
    read (:func:`cifarlab.data.readers.scan_tarball`: a hostile member refuses the whole
    archive, the gzip CRC is checked to the end)."""
    path = Path(path)
    redo = f"download {TARBALL_NAME} again"
    parsed = read_members(path, FOLDER_NAME, REQUIRED_FILES, _parse, KIND, redo)
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


def _files(form: str, root: Path) -> list[Path]:
    """The files a form's reader reads (what the cache key covers)."""
    if form == "python":
        sums = root / SUMS_FILE  # a user's own sums are part of what the reader checked
        return [*(root / f for f in REQUIRED_FILES), *([sums] if os.path.lexists(sums) else [])]
    if form == "tarball":
        return [root]
    return cache.tree_files(root)


def _fine(data: LabelledImages) -> bool:
    return data.dataset == "cifar100" and data.classes == FINE_CLASSES


# One decoded (fine) cache entry serves both label kinds (see as_coarse).
LOCATOR = Locator(
    kind=KIND,
    env=ENV,
    home="cifar100",
    folder=FOLDER_NAME,
    tarball=TARBALL_NAME,
    sample=sample_dir(),
    readers={"python": read_python_dir, "tarball": read_tarball, "images": read_image_folders},
    find_form=find_form,
    # Module attributes, read at call time, so tests can serve a local archive.
    fetch=lambda home, progress: _download.download_archive(
        home,
        url=_download.CIFAR100_URL,
        md5=_download.CIFAR100_MD5,
        filename=TARBALL_NAME,
        dataset=KIND,
        progress=progress,
    ),
    cache_files=_files,
    cache_options={"dataset": "cifar100", "labels": "fine"},
    accept=_fine,
)


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
    return LOCATOR.load_sample()


def load_cifar100(
    where: str | os.PathLike[str] | None = None, *, coarse: bool = False, **options: bool
) -> LabelledImages:
    """Load CIFAR-100 as numpy arrays (see the module docstring for where it looks).

    ``coarse``: the 20 superclass labels (``dataset="cifar100-coarse"``) instead of the 100
    fine ones (``"cifar100"``). ``options`` are :func:`cifarlab.data.locate.load_cifar10`'s
    (``download`` into ``cache_dir()/cifar100``, ``use_cache``, ``fallback_to_sample``,
    ``progress``), with the same defaults. A damaged copy always raises DataError.
    """
    data = find_or_fetch(LOCATOR, where, **options)
    return as_coarse(data) if coarse else data
