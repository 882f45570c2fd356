"""Readers for the three on-disk forms of CIFAR-10, all returning the same arrays
(:class:`LabelledImages`, the in-memory form of every dataset cifarlab reads), and the
helpers CIFAR-100's readers (:mod:`cifarlab.data.cifar100`) share with them.

- the official python layout, a ``cifar-10-batches-py/`` folder of pickled batches
  (read with the restricted unpickler of :mod:`cifarlab.data.safe_pickle`, each file's
  md5 verified against the known copies of :mod:`cifarlab.data.checksums`);
- the official ``cifar-10-python.tar.gz``, read member by member without unpacking;
- an image-folder tree ``train/<class>/*.png`` + ``test/<class>/...``.

Every problem with a file is a :class:`~cifarlab.errors.DataError` whose one-line
message names the file. One concern: reading CIFAR's files into arrays (no locating,
caching or downloading).
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cifarlab.data.checksums import md5_hex, verify_copy
from cifarlab.data.safe_pickle import safe_loads
from cifarlab.errors import DataError

FOLDER_NAME = "cifar-10-batches-py"
TARBALL_NAME = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
REQUIRED_FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

NUM_CLASSES = 10  # CIFAR-10's; other datasets take theirs from their own files
IMAGE_SHAPE = (32, 32, 3)  # CIFAR-10's and CIFAR-100's; an image folder's is the recipe's
_ROW = 32 * 32 * 3  # one image in a batch: 1024 red, then 1024 green, then 1024 blue bytes


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays is elementwise, not a bool
class LabelledImages:
    """A dataset as numpy arrays: uint8 HWC square images and int64 labels, two splits.

    CIFAR-10, CIFAR-100 (fine or coarse labels) and a user's image folders all read into
    this; ``dataset`` says which (a name of ``cifarlab.data.datasets.DATASETS``).
    """

    train_images: np.ndarray  # uint8 (N, S, S, 3), C-contiguous; S = 32 for CIFAR
    train_labels: np.ndarray  # int64 (N,), in 0..len(classes) - 1
    test_images: np.ndarray  # uint8 (M, S, S, 3)
    test_labels: np.ndarray  # int64 (M,)
    classes: tuple[str, ...]  # ('airplane', 'automobile', ..., 'truck') for CIFAR-10
    source: str  # one human-readable line: which form, which path
    is_sample: bool = False  # True for a bundled sample
    from_cache: bool = False  # True when the arrays came from the decoded-array cache
    dataset: str = "cifar10"

    def __post_init__(self) -> None:
        # Cheap structural checks (no pass over the pixels), so a dataset built by
        # hand in a test or a script fails here rather than deep inside training.
        side = self.train_images.shape[1] if self.train_images.ndim == 4 else 0
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.shape[1:] != (side, side, 3) or side < 1:
                raise ValueError(
                    f"{split}_images must be uint8 (N, S, S, 3) with one S for both splits, "
                    f"got {images.dtype} {images.shape}"
                )
            if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
                raise ValueError(
                    f"{split}_labels must be int64 ({len(images)},), got {labels.dtype} {labels.shape}"
                )
        if len(self.classes) < 2:
            raise ValueError(f"expected 2 or more class names, got {len(self.classes)}")

    @classmethod
    def from_splits(
        cls,
        train: tuple[np.ndarray, np.ndarray],
        test: tuple[np.ndarray, np.ndarray],
        classes: tuple[str, ...] | list[str],
        source: str,
        dataset: str = "cifar10",
    ) -> LabelledImages:
        """A dataset from its ``(images, labels)`` splits, as the readers make them."""
        return cls(*train, *test, tuple(classes), source=source, dataset=dataset)


CIFAR10 = LabelledImages  # the name from before cifarlab read other datasets


# --- the python layout -------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def str_keys(obj: Any, name: str, kind: str = "CIFAR-10") -> dict[str, Any]:
    """A batch dict with str keys (Python 2 pickles give bytes keys under encoding='bytes');
    ``kind`` names the dataset in the error."""
    if not isinstance(obj, Mapping):
        raise DataError(
            f"{name}: not a {kind} batch (holds a {type(obj).__name__}, not a dict); "
            "replace it with a clean copy"
        )
    return {_text(k): v for k, v in obj.items()}


def parse_meta(obj: Any, name: str) -> tuple[str, ...]:
    """Class names from an unpickled ``batches.meta``."""
    meta = str_keys(obj, name)
    names = meta.get("label_names")
    if not isinstance(names, list | tuple) or len(names) != NUM_CLASSES:
        raise DataError(
            f"{name}: label_names must list {NUM_CLASSES} class names; replace it with a clean copy"
        )
    return tuple(_text(n) for n in names)


def parse_rows(
    obj: Any, name: str, kind: str, label_counts: dict[str, int]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(data, {key: labels})`` of an unpickled batch: uint8 (n, 3072) rows and, for each
    ``key`` of ``label_counts``, int64 (n,) labels in ``0..count - 1``, validated; ``kind``
    names the dataset in the errors (CIFAR-10's ``labels``, CIFAR-100's fine and coarse)."""
    batch = str_keys(obj, name, kind)
    fix = "replace it with a clean copy"
    for key in ("data", *label_counts):
        if key not in batch:
            raise DataError(f"{name}: no '{key}' entry, not a {kind} batch; {fix}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        what = f"{data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{name}: data must be a uint8 array, got {what}; {fix}")
    if data.ndim != 2 or data.shape[1] != _ROW:
        raise DataError(f"{name}: data has shape {data.shape}, expected (n, {_ROW}); {fix}")
    labels = {}
    for key, count in label_counts.items():
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
    return data, labels


def parse_batch(obj: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(data, labels)`` of an unpickled CIFAR-10 batch: uint8 (n, 3072) and int64 (n,)."""
    data, labels = parse_rows(obj, name, "CIFAR-10", {"labels": NUM_CLASSES})
    return data, labels["labels"]


def unpickle_bytes(raw: bytes, name: str, kind: str = "CIFAR-10") -> Any:
    """``raw`` unpickled with the restricted unpickler (:mod:`cifarlab.data.safe_pickle`),
    anything but its own refusal turned into a one-line DataError (``kind``: the dataset the
    message names)."""
    try:
        return safe_loads(raw, name=name, kind=kind)
    except DataError:
        raise
    except MemoryError:
        # A damaged length field makes the unpickler ask for an absurd allocation; a
        # real batch is 30 MB, so this is the file's fault, not the machine's.
        raise DataError(
            f"{name}: damaged (it asks for more memory than there is); replace it with a clean copy"
        ) from None
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise DataError(
            f"{name}: truncated or not a {kind} batch ({type(exc).__name__}); "
            "replace it with a clean copy"
        ) from None


def to_hwc(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack (n, 3072) plane-major rows into one (N, 32, 32, 3) HWC array, one copy per batch."""
    total = sum(len(d) for d, _ in parts)
    images = np.empty((total, *IMAGE_SHAPE), dtype=np.uint8)
    labels = np.empty(total, dtype=np.int64)
    start = 0
    for data, lab in parts:
        stop = start + len(data)
        # One copy per colour plane: each is a contiguous read and a stride-3 write,
        # ~3x faster than assigning the (0, 2, 3, 1) transpose (whose inner loop is 3 long).
        planes = data.reshape(-1, 3, 1024)
        pixels = images[start:stop].reshape(-1, 1024, 3)
        for c in range(3):
            pixels[:, :, c] = planes[:, c]
        labels[start:stop] = lab
        start = stop
    return images, labels


def read_pickles(
    folder: Path,
    files: tuple[str, ...],
    parse: Callable[[str, Any, str], Any],
    kind: str,
    needs: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each of ``files`` in ``folder`` read once, its md5 taken from those bytes, unpickled
    with the restricted unpickler and passed to ``parse(file, object, path)``: ``(parsed,
    md5)``, both keyed by file. Every file is parsed before any sum is compared, so a broken
    one is named with what is wrong with it. ``needs`` ("a cifar-10-batches-py folder needs
    ...") completes the message naming a missing file; ``kind`` names the dataset."""
    for fname in files:
        if not (folder / fname).is_file():
            raise DataError(f"{folder / fname}: missing ({needs}); restore it from a clean copy")
    parsed: dict[str, Any] = {}
    sums: dict[str, str] = {}
    for fname in files:
        path = folder / fname
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(
                f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
            ) from None
        sums[fname] = md5_hex(raw)
        obj = unpickle_bytes(raw, str(path), kind)
        del raw
        parsed[fname] = parse(fname, obj, str(path))
    return parsed, sums


def _parse(fname: str, obj: Any, name: str) -> Any:
    return parse_meta(obj, name) if fname == META_FILE else parse_batch(obj, name)


def _dataset(parsed: dict[str, Any], source: str) -> LabelledImages:
    return LabelledImages.from_splits(
        to_hwc([parsed[f] for f in TRAIN_FILES]),
        to_hwc([parsed[TEST_FILE]]),
        parsed[META_FILE],
        source=source,
    )


def read_python_dir(folder: Path) -> LabelledImages:
    """Read a ``cifar-10-batches-py`` folder (data_batch_1..5, test_batch, batches.meta).

    Every file is parsed first (so a broken one is named with what is wrong with it),
    then the seven files' md5 sums must all match one known copy
    (:func:`cifarlab.data.checksums.verify_copy`): a damaged byte that leaves the pickle
    valid is refused instead of read as different data.
    """
    folder = Path(folder)
    needs = f"a {FOLDER_NAME} folder needs data_batch_1..5, test_batch and batches.meta"
    # The meta file first: the sums are compared in reading order (the first unknown one named).
    order = (META_FILE, *TRAIN_FILES, TEST_FILE)
    parsed, sums = read_pickles(folder, order, _parse, "CIFAR-10", needs)
    verify_copy(folder, sums)
    return _dataset(parsed, f"CIFAR-10 python batches in {os.path.abspath(folder)}")


# --- the official tarball ----------------------------------------------------------------


def member_key(
    name: str, folder: str = FOLDER_NAME, files: tuple[str, ...] = REQUIRED_FILES
) -> str | None:
    """The file of ``files`` a tar member stands for (``<folder>/x`` or top-level ``x``), or
    None; CIFAR-10's batch files by default."""
    path = PurePosixPath(name[2:] if name.startswith("./") else name)
    if path.name in files and str(path.parent) in (folder, "."):
        return path.name
    return None


def _escapes(name: str) -> bool:
    """True for an absolute path (POSIX or Windows) or one that climbs out with ``..``."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    depth = 0
    for part in name.replace("\\", "/").split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why an archive member could write or point outside the folder it belongs to, or None.

    The checks of tarfile's ``filter="data"`` (PEP 706), applied to every member even
    though cifarlab never extracts: absolute or ``..`` names, links whose target is
    absolute or climbs out of the archive, and device or FIFO members. Such an archive
    has been tampered with, so it is refused whole.
    """
    name = member.name
    if _escapes(name) or ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "unsafe path (absolute or with '..')"
    if member.issym() or member.islnk():
        target = member.linkname
        # A symlink resolves from its own folder; a hard link names a member from the root.
        base = str(PurePosixPath(name).parent) if member.issym() else ""
        if _escapes(target) or _escapes(f"{base}/{target}" if base not in ("", ".") else target):
            return f"is a link to {target!r}, outside the archive"
    if member.ischr() or member.isblk() or member.isfifo():
        return "is a device or FIFO, not a regular file"
    return None


def scan_tarball(
    path: Path,
    key_of: Callable[[str], str | None],
    use: Callable[[str, str, bytes], None],
    redo: str,
) -> None:
    """Read the archive at ``path`` in place, member by member, calling
    ``use(key, "archive:member", bytes)`` for each member ``key_of`` names a key for.

    Every member is checked (:func:`unsafe_member`: the whole archive is refused for one
    hostile member, wherever it is), a wanted member must be a regular file, and the
    compressed stream is read to its end so its CRC is checked. Every problem is a
    one-line DataError naming the archive (and member) and ending with ``redo``.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            # Iterate in archive order: a .gz stream cannot seek back cheaply.
            for member in tar:
                unsafe = unsafe_member(member)
                if unsafe:
                    raise DataError(f"{path}:{member.name}: {unsafe}; {redo}")
                key = key_of(member.name)
                if key is None:
                    continue
                name = f"{path}:{member.name}"
                if not member.isfile():
                    raise DataError(f"{name}: is a link or not a regular file; {redo}")
                fobj = tar.extractfile(member)
                if fobj is None:  # pragma: no cover - isfile() members always have data
                    raise DataError(f"{name}: cannot be read; {redo}")
                use(key, name, fobj.read())
                # No early exit once all batches are read: every member is checked, so a
                # hostile member placed after them is refused too.
            # Read the compressed stream to its end: gzip (bz2, xz) checks its CRC there, after
            # the end-of-archive marker where tarfile stops; without this a changed byte in a
            # member decompresses to different pixels that are read as real data.
            while tar.fileobj.read(1 << 20):
                pass
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        # ValueError: e.g. a damaged header whose member name is not valid UTF-8.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: not a readable tar archive ({reason}); {redo}") from None


def read_members(
    path: Path,
    folder: str,
    files: tuple[str, ...],
    parse: Callable[[str, Any, str], Any],
    kind: str,
    redo: str,
) -> dict[str, Any]:
    """Each of ``files`` from the archive at ``path`` (as ``<folder>/file`` or top-level),
    unpickled with the restricted unpickler and passed to ``parse(file, object, name)``,
    keyed by file; a missing one is a DataError ending with ``redo`` (see
    :func:`scan_tarball` for the rest)."""
    parsed: dict[str, Any] = {}

    def use(key: str, name: str, raw: bytes) -> None:
        parsed[key] = parse(key, unpickle_bytes(raw, name, kind), name)

    scan_tarball(path, lambda name: member_key(name, folder, files), use, redo)
    for fname in files:
        if fname not in parsed:
            raise DataError(f"{path}: member {folder}/{fname} is missing; {redo}")
    return parsed


def read_tarball(path: Path) -> LabelledImages:
    """Read ``cifar-10-python.tar.gz`` in place, member by member, without extracting it.

    We only read members by name into memory, so nothing is ever written; still, an
    archive with a member :func:`unsafe_member` objects to (absolute or ``..`` names,
    links pointing outside, device files), or with the batch files as links, is refused
    as tampered with.
    """
    path = Path(path)
    redo = f"download {TARBALL_NAME} again"
    parsed = read_members(path, FOLDER_NAME, REQUIRED_FILES, _parse, "CIFAR-10", redo)
    return _dataset(parsed, f"CIFAR-10 archive {os.path.abspath(path)}")


# --- image folders -----------------------------------------------------------------------


def class_folders(split_dir: Path, expected: int = NUM_CLASSES) -> list[str]:
    """The sorted names of the class folders in ``split_dir``; there must be ``expected``."""
    if not split_dir.is_dir():
        raise DataError(
            f"{split_dir}: missing (an image-folder copy needs train/<class>/ and test/<class>/)"
        )
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) != expected:
        raise DataError(
            f"{split_dir}: found {len(names)} class folders, expected {expected} "
            "(one subfolder of images per class)"
        )
    return names


def image_files(split_dir: Path, classes: list[str]) -> list[tuple[str, int, Path]]:
    """``(file name, label, path)`` of every image under ``split_dir``, in reading order.

    Order is by file name across all classes (ties by class), so a tree written with
    zero-padded indices (``00042.png``) reads back in its original order.
    """
    entries = []
    for label, cls in enumerate(classes):
        class_dir = split_dir / cls
        count = 0
        with os.scandir(class_dir) as it:  # scandir: file types without a stat per file
            for entry in it:
                if entry.name.startswith("."):  # .DS_Store and friends
                    continue
                path = class_dir / entry.name
                if not entry.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataError(
                        f"{path}: not an image (expected .png, .jpg or .jpeg files only); remove it"
                    )
                entries.append((entry.name, label, path))
                count += 1
        if count == 0:
            raise DataError(
                f"{class_dir}: empty (expected the .png/.jpg images of class {cls}); copy them in"
            )
    entries.sort(key=lambda e: (e[0], e[1]))
    return entries


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image  # PIL only when image folders are read

    try:
        with Image.open(path) as im:
            if im.size != (32, 32):
                raise DataError(
                    f"{path}: image is {im.size[0]}×{im.size[1]}, expected 32×32; resize or remove it"
                )
            if im.format == "PNG":
                # PIL decodes a PNG without checking the image data's chunk CRCs, and stops
                # once it has every row: a changed byte there can decode to other pixels.
                # verify() reads every chunk and checks its CRC, so such damage is refused.
                with Image.open(path) as probe:
                    probe.verify()
            if im.mode == "RGBA":
                rgba = np.asarray(im)
                if (rgba[..., 3] != 255).any():
                    raise DataError(
                        f"{path}: image has transparent pixels, expected plain RGB; convert or remove it"
                    )
                return rgba[..., :3]
            if im.mode not in ("RGB", "L", "P"):
                raise DataError(
                    f"{path}: image mode is {im.mode}, expected RGB; convert or remove it"
                )
            return np.asarray(im.convert("RGB"))
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{path}: not a readable image ({type(exc).__name__}); replace or remove it"
        ) from None


def read_split(split_dir: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 (N, 32, 32, 3)) and labels (int64, the index in ``classes``) of
    ``split_dir/<class>/*``, in :func:`image_files`' order."""
    entries = image_files(split_dir, classes)
    images = np.empty((len(entries), *IMAGE_SHAPE), dtype=np.uint8)
    labels = np.fromiter((e[1] for e in entries), dtype=np.int64, count=len(entries))
    for i, (_, _, path) in enumerate(entries):
        images[i] = _read_image(path)
    return images, labels


def read_image_folders(root: Path) -> LabelledImages:
    """Read ``root/train/<class>/*`` and ``root/test/<class>/*`` (32×32 RGB images)."""
    root = Path(root)
    classes = class_folders(root / "train")
    test_classes = class_folders(root / "test")
    if test_classes != classes:
        raise DataError(
            f"{root / 'test'}: class folders {test_classes} differ from train/'s {classes}"
        )
    return LabelledImages.from_splits(
        read_split(root / "train", classes),
        read_split(root / "test", classes),
        classes,
        source=f"CIFAR-10 image folders in {os.path.abspath(root)} (train/ + test/)",
    )
