"""Find CIFAR-10, read it (through the decoded-array cache), or download it.

Where the data is, first match wins:

1. the ``data_dir`` argument (the CLI's ``--data-dir``); ``"sample"`` is the bundled sample;
2. the ``CIFARLAB_DATA`` environment variable (same forms);
3. ``cache_dir()/cifar10``, where a download goes.

A location named explicitly (1 or 2) is the only place looked: a mistyped path
is reported, never silently replaced by some other copy. Only the default
location (3) is downloaded into.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

from cifarlab.data import cache
from cifarlab.data import download as _download
from cifarlab.data.readers import (
    FOLDER_NAME,
    REQUIRED_FILES,
    TARBALL_NAME,
    LabelledImages,
    read_image_folders,
    read_python_dir,
    read_tarball,
)
from cifarlab.errors import DataError

SAMPLE = "sample"
_READERS: dict[str, Callable[[Path], LabelledImages]] = {
    "python": read_python_dir,
    "tarball": read_tarball,
    "images": read_image_folders,
}


def sample_dir() -> Path:
    """The bundled sample's ``cifar-10-batches-py`` folder (2,000 train / 500 test images)."""
    return Path(str(resources.files("cifarlab.data") / "sample" / FOLDER_NAME))


def find_form(path: Path) -> tuple[str, Path] | None:
    """Which form of CIFAR-10 ``path`` is or holds: ``(form, where)``, or None.

    ``form`` is "python" (a cifar-10-batches-py folder), "tarball" or "images"
    (a folder with train/ and test/). Preference follows reading speed.
    """
    if path.is_file():
        return ("tarball", path)
    if not path.is_dir():
        return None
    if any((path / f).exists() for f in REQUIRED_FILES):
        return ("python", path)
    if (path / FOLDER_NAME).is_dir():
        return ("python", path / FOLDER_NAME)
    if (path / TARBALL_NAME).is_file():
        return ("tarball", path / TARBALL_NAME)
    if (path / "train").is_dir() or (path / "test").is_dir():
        return ("images", path)
    return None


def _looked_for(path: Path) -> str:
    return f"{path}/{FOLDER_NAME}/, {path}/{TARBALL_NAME} or {path}/train/ + test/"


def _not_found(path: Path, origin: str) -> str:
    return f"not found in {path}{origin} (looked for {_looked_for(path)})"


def _named_location_error(why: str) -> DataError:
    return DataError(
        f"CIFAR-10 {why}; point --data-dir DIR "
        "or CIFARLAB_DATA=DIR at a folder holding one of these, or use --data-dir sample"
    )


def find_existing(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The copy of CIFAR-10 that :func:`load_cifar10` would read, found without reading or
    downloading anything: in ``data_dir``, else ``CIFARLAB_DATA``, else ``cache_dir()/cifar10``.

    Returns the form's path (what ``--data-dir`` takes), or None when the cache holds none (where
    ``load_cifar10`` would download). A location named explicitly that holds none is a
    DataError, as in ``load_cifar10``. ``"sample"`` is not a location here: check it first.
    """
    origin = ""
    if data_dir is None and os.environ.get("CIFARLAB_DATA"):
        data_dir, origin = os.environ["CIFARLAB_DATA"], " (from CIFARLAB_DATA)"
    path = Path(data_dir).expanduser() if data_dir is not None else cache.cache_dir() / "cifar10"
    found = find_form(path)
    if found is not None:
        return found[1]
    if data_dir is not None:
        raise _named_location_error(_not_found(path, origin))
    return None


def load_sample() -> LabelledImages:
    """The bundled sample (official python layout), never cached: it reads in milliseconds."""
    data = read_python_dir(sample_dir())
    return replace(
        data, source=f"bundled sample ({_counts(data)}) in {sample_dir()}", is_sample=True
    )


def _counts(data: LabelledImages) -> str:
    return f"{len(data.train_labels):,} train / {len(data.test_labels):,} test"


def _fallback(why: str) -> LabelledImages:
    data = load_sample()
    return replace(data, source=f"bundled sample ({_counts(data)}): {why}")


def read_form(form: str, path: Path, *, use_cache: bool = True) -> LabelledImages:
    """Read one form at ``path``, through the decoded-array cache unless ``use_cache`` is off."""
    key = cache.source_key(form, path) if use_cache else None
    if key is not None:
        hit = cache.load_entry(key)
        if hit is not None:
            return hit
    data = _READERS[form](path)
    if key is not None:
        cache.save_entry(key, data, path)
    return data


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    use_cache: bool = True,
    fallback_to_sample: bool = False,
    progress: bool = True,
) -> LabelledImages:
    """Load CIFAR-10 as numpy arrays (see the module docstring for where it looks).

    ``data_dir`` may hold a form (cifar-10-batches-py/, cifar-10-python.tar.gz,
    train/ + test/) or be one. ``download``: fetch the official archive into the
    cache when no location is given and none is cached. ``fallback_to_sample``:
    when nothing is found or downloaded, return the bundled sample (its ``source``
    says why) instead of raising. A damaged copy always raises DataError.
    """
    origin = ""
    if data_dir is None and os.environ.get("CIFARLAB_DATA"):
        data_dir, origin = os.environ["CIFARLAB_DATA"], " (from CIFARLAB_DATA)"
    if isinstance(data_dir, str) and data_dir == SAMPLE:
        return load_sample()

    if data_dir is not None:
        path = Path(data_dir).expanduser()
        found = find_form(path)
        if found is not None:
            return read_form(*found, use_cache=use_cache)
        why = _not_found(path, origin)
        if fallback_to_sample:
            return _fallback(f"full CIFAR-10 {why}")
        raise _named_location_error(why)

    home = cache.cache_dir() / "cifar10"
    found = find_form(home)
    if found is not None:
        return read_form(*found, use_cache=use_cache)
    why = _not_found(home, "")
    if download:
        try:
            # Module attributes, read at call time, so tests can serve a local archive.
            tarball = _download.download_cifar10(
                home, url=_download.OFFICIAL_URL, md5=_download.OFFICIAL_MD5, progress=progress
            )
        except DataError as exc:
            why += f"; {exc}"
        else:
            return read_form("tarball", tarball, use_cache=use_cache)
    else:
        why += "; downloading is off"
    if fallback_to_sample:
        return _fallback(f"full CIFAR-10 {why}")
    raise DataError(
        f"CIFAR-10 {why}; get cifar-10-python.tar.gz and point at it with --data-dir DIR "
        "or CIFARLAB_DATA=DIR (or use --data-dir sample)"
    )
