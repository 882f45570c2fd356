"""The per-user cache: where downloads go, and decoded arrays for fast reloads.

Decoding the pickled batches (or 60,000 PNGs) takes seconds; ``np.load`` of the
decoded arrays takes a fraction of one. An entry lives in
``cache_dir()/arrays/<key>/`` (four ``.npy`` files and ``meta.json``); the key hashes
the source's resolved path and the name, size and mtime_ns of each of its files, so
an edited or replaced copy gets a new entry. An entry is written only after its source
was read (for the python layout: each file's md5 verified, see
:mod:`cifarlab.data.checksums`), so a hit needs no hashing: files whose size and mtime
are unchanged were verified when the entry was made, and any change to a file (or to
the folder's MD5SUMS, which is keyed too) makes a new entry, read and verified afresh. Entries are written to a temporary
folder and renamed into place, and any entry that fails to load is deleted and
rebuilt: the cache can make loading faster, never make it fail.

Single derived arrays (the corrupted test sets of :mod:`cifarlab.data.cifar10c`) use
:func:`save_array` / :func:`load_array`: one ``.npy`` and a ``.json`` beside it holding what
the array is (its key) and its checksum, each written through
:func:`cifarlab.atomic.write_atomic`, under the same rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cifarlab.atomic import write_atomic, write_json
from cifarlab.data.checksums import SUMS_FILE
from cifarlab.data.readers import REQUIRED_FILES, LabelledImages
from cifarlab.errors import CifarlabError

# Bump when the readers' output, what they accept, or the entry layout changes. 2: the
# python layout's md5 sums are verified; entries made before were not, so they are rebuilt.
FORMAT_VERSION = 2
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
CACHE_NOTE = " (decoded arrays cached in "  # appended to the source of data loaded from an entry


def source_origin(source: str) -> str:
    """Where data came from, from its ``source`` line: without the cache note (whose key
    changes with the files' mtimes) and with each path normalised (``a/../b`` is ``b``), so
    two runs that read the same files say the same thing."""
    origin = source.split(CACHE_NOTE, 1)[0]
    return re.sub(r"/[^\s()]*", lambda m: os.path.normpath(m.group(0)), origin)


def cache_dir() -> Path:
    """$CIFARLAB_CACHE, else $XDG_CACHE_HOME/cifarlab, else ~/.cache/cifarlab."""
    if os.environ.get("CIFARLAB_CACHE"):
        return Path(os.environ["CIFARLAB_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "cifarlab"
    return Path.home() / ".cache" / "cifarlab"


def arrays_dir() -> Path:
    """Where decoded-array entries live."""
    return cache_dir() / "arrays"


def tree_files(path: Path, splits: tuple[str, ...] = ("train", "test")) -> list[Path]:
    """Every visible file under ``path/<split>/`` for each split, in a fixed order."""
    files = []
    for split in splits:
        for dirpath, dirnames, filenames in os.walk(path / split):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def _source_files(form: str, path: Path) -> list[Path]:
    if form == "python":
        sums = path / SUMS_FILE  # a user's own sums are part of what the reader checked
        extra = [sums] if os.path.lexists(sums) else []
        return [*(path / f for f in REQUIRED_FILES), *extra]
    if form == "tarball":
        return [path]
    return tree_files(path)  # image folders: every visible file under train/ and test/


def source_key(
    form: str,
    path: Path,
    *,
    files: Callable[[Path], list[Path]] | None = None,
    options: dict[str, Any] | None = None,
) -> str | None:
    """The cache key of a source, or None when its files cannot be listed.

    None leaves the reader to report the problem (e.g. a missing batch file). CIFAR-10's
    forms ("python", "tarball", "images") know their files; another dataset's reader passes
    ``files`` (the source's resolved root -> the files it reads) and, where how it reads
    them depends on settings (an image folder's resolution, its split), ``options``.
    """
    try:
        root = Path(path).resolve()
        stats = []
        for f in (files or (lambda r: _source_files(form, r)))(root):
            st = f.stat()
            stats.append(
                [str(f.relative_to(root)) if f != root else f.name, st.st_size, st.st_mtime_ns]
            )
    except (OSError, ValueError):
        return None
    key: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "form": form,
        "root": str(root),
        "files": stats,
    }
    if options is not None:  # absent for CIFAR-10, whose keys stay as they were
        key["options"] = options
    blob = json.dumps(key, sort_keys=options is not None)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _checksum(a: np.ndarray) -> int:
    # adler32 reads ~2 GB/s: cheap next to np.load, and catches flipped or zeroed bytes.
    return zlib.adler32(memoryview(np.ascontiguousarray(a)).cast("B"))


def load_entry(key: str) -> LabelledImages | None:
    """The cached arrays for ``key``; None when absent. A damaged entry is deleted."""
    entry = arrays_dir() / key
    if not entry.is_dir():
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError("old format")
        arrays = {name: np.load(entry / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
        for name in ARRAYS:
            if _checksum(arrays[name]) != meta["checksums"][name]:
                raise ValueError(f"{name} checksum")
        n_classes = len(meta["classes"])
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            side = meta.get("side", 32)
            if images.shape != (meta[f"n_{split}"], side, side, 3) or len(labels) != len(images):
                raise ValueError(f"{split} shape")
            if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
                raise ValueError(f"{split} labels")
        data = LabelledImages(
            **arrays,
            classes=tuple(meta["classes"]),
            source=f"{meta['source']}{CACHE_NOTE}{entry})",
            from_cache=True,
            dataset=meta.get("dataset", "cifar10"),
        )
    except Exception:  # any damage at all means: delete and rebuild
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return data


def save_entry(key: str, data: LabelledImages, path: Path) -> Path | None:
    """Write ``data`` as the entry ``key`` for the source at ``path``; None if that failed.

    Older entries for the same source path (an earlier mtime) are removed, so
    re-copying the dataset does not pile up stale 180 MB entries.
    """
    root = arrays_dir()
    final = root / key
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(data, name), allow_pickle=False)
        meta = {
            "format": FORMAT_VERSION,
            "dataset": data.dataset,
            "classes": list(data.classes),
            "side": int(data.train_images.shape[1]),
            "source": data.source,
            "path": str(Path(path).resolve()),
            "n_train": len(data.train_labels),
            "n_test": len(data.test_labels),
            "checksums": {name: _checksum(getattr(data, name)) for name in ARRAYS},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if final.exists():  # a damaged entry we are replacing
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
            tmp = None
        except OSError:
            if not (final / "meta.json").is_file():
                raise
            # Another process wrote the same entry first; theirs is as good as ours.
    except OSError as exc:  # a full or read-only disk costs speed, not the run
        warnings.warn(f"could not cache decoded image arrays in {root}: {exc}", stacklevel=3)
        return None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(meta["path"], keep=key)
    return final


def _prune(path: str, keep: str) -> None:
    for entry in arrays_dir().iterdir():
        if entry.name == keep or entry.name.startswith("."):
            continue
        try:
            if json.loads((entry / "meta.json").read_text()).get("path") == path:
                shutil.rmtree(entry, ignore_errors=True)
        except (OSError, ValueError):
            continue


# --------------------------------------------------------------------------- single arrays


def _array_meta(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_array(path: Path, key: dict) -> np.ndarray | None:
    """The array cached at ``path`` (a .npy) if its .json names the same ``key`` and its
    checksum matches; None otherwise. A damaged or mismatched entry is deleted."""
    meta_path = _array_meta(path)
    if not path.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            raise ValueError("another key")
        array = np.load(path, allow_pickle=False)
        if list(array.shape) != meta["shape"] or array.dtype.str != meta["dtype"]:
            raise ValueError("shape")
        if _checksum(array) != meta["checksum"]:
            raise ValueError("checksum")
    except Exception:  # any damage at all means: delete and rebuild
        path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        return None
    return array


def save_array(path: Path, array: np.ndarray, key: dict) -> Path | None:
    """Cache ``array`` at ``path`` (a .npy) with ``key`` and its checksum in a .json beside
    it, each written atomically, the .json last (it is what makes the entry count). None,
    with a warning, when that failed: a full disk costs speed, never the result."""
    meta = {
        "key": key,
        "shape": list(array.shape),
        "dtype": array.dtype.str,
        "checksum": _checksum(array),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))
        write_json(_array_meta(path), meta)
    except (OSError, CifarlabError) as exc:
        warnings.warn(f"could not cache {path.name} in {path.parent}: {exc}", stacklevel=2)
        return None
    return path
