"""Find CIFAR-10, read it (through the decoded-array cache), or download it; and the
:class:`Locator` that does the same for any CIFAR-like dataset (CIFAR-100 has one in
:mod:`cifarlab.data.cifar100`).

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
from dataclasses import dataclass, replace
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
    return form_at(path, FOLDER_NAME, REQUIRED_FILES, TARBALL_NAME)


def form_at(
    path: Path,
    folder: str,
    files: tuple[str, ...],
    tarball: str,
    is_there: Callable[[Path], bool] = Path.exists,
) -> tuple[str, Path] | None:
    """Which form of a dataset ``path`` is or holds, ``(form, where)`` or None: "python" (a
    ``folder`` of the pickled ``files``, or a folder holding one), "tarball" (a file, or
    ``tarball`` inside), "images" (train/ and test/). Preference follows reading speed.
    ``is_there`` tells a pickled file present (CIFAR-100's ``train`` file must be a file,
    not the image-folder form's ``train/``)."""
    if path.is_file():
        return ("tarball", path)
    if not path.is_dir():
        return None
    if any(is_there(path / f) for f in files):
        return ("python", path)
    if (path / folder).is_dir():
        return ("python", path / folder)
    if (path / tarball).is_file():
        return ("tarball", path / tarball)
    if (path / "train").is_dir() or (path / "test").is_dir():
        return ("images", path)
    return None


def not_found_in(path: Path, origin: str, folder: str, tarball: str) -> str:
    """ "not found in PATH (looked for ...)": what a location without any form lacks."""
    looked = f"{path}/{folder}/, {path}/{tarball} or {path}/train/ + test/"
    return f"not found in {path}{origin} (looked for {looked})"


def counts(data: LabelledImages) -> str:
    return f"{len(data.train_labels):,} train / {len(data.test_labels):,} test"


def _everything(data: LabelledImages) -> bool:
    return True


@dataclass(frozen=True)
class Locator:
    """How one dataset is found, read and fetched: the location rule of this module's
    docstring, written once for CIFAR-10 and CIFAR-100 (:mod:`cifarlab.data.cifar100`)."""

    kind: str  # "CIFAR-10": how messages name the dataset
    env: str  # the environment variable naming a location
    home: str  # the folder under cache_dir() a download goes to
    folder: str  # the python layout's folder name
    tarball: str  # the official archive's file name
    sample: Path  # the bundled sample, in the python layout
    readers: dict[str, Callable[[Path], LabelledImages]]  # form -> reader
    find_form: Callable[[Path], tuple[str, Path] | None]
    fetch: Callable[[Path, bool], Path]  # (home, progress) -> the verified archive
    # The decoded-array cache's key (cifarlab.data.cache.source_key): the files a form reads,
    # (form, root) -> paths, and the reading options; None for CIFAR-10's, whose keys predate them.
    cache_files: Callable[[str, Path], list[Path]] | None = None
    cache_options: dict[str, str] | None = None
    accept: Callable[[LabelledImages], bool] = _everything  # is a cache entry this dataset?

    def read_form(self, form: str, path: Path, *, use_cache: bool = True) -> LabelledImages:
        """Read one form at ``path``, through the decoded-array cache unless ``use_cache``
        is off."""
        key = None
        if use_cache:
            listed = self.cache_files
            files = None if listed is None else (lambda root: listed(form, root))
            key = cache.source_key(form, path, files=files, options=self.cache_options)
        if key is not None:
            hit = cache.load_entry(key)
            if hit is not None and self.accept(hit):
                return hit
        data = self.readers[form](path)
        if key is not None:
            cache.save_entry(key, data, path)
        return data

    def load_sample(self) -> LabelledImages:
        """The bundled sample, never cached: it reads in milliseconds."""
        data = self.readers["python"](self.sample)
        return replace(
            data, source=f"bundled sample ({counts(data)}) in {self.sample}", is_sample=True
        )

    def not_found(self, path: Path, origin: str) -> str:
        return not_found_in(path, origin, self.folder, self.tarball)

    def fallback(self, why: str) -> LabelledImages:
        data = self.load_sample()
        return replace(data, source=f"bundled sample ({counts(data)}): {why}")

    def named_location_error(self, why: str) -> DataError:
        return DataError(
            f"{self.kind} {why}; point --data-dir DIR or {self.env}=DIR at a folder holding "
            "one of these, or use --data-dir sample"
        )


def find_or_fetch(
    loc: Locator,
    where: str | os.PathLike[str] | None,
    *,
    download: bool = True,
    use_cache: bool = True,
    fallback_to_sample: bool = False,
    progress: bool = True,
) -> LabelledImages:
    """The dataset ``loc`` describes, by the location rule (see the module docstring)."""
    origin = ""
    if where is None and os.environ.get(loc.env):
        where, origin = os.environ[loc.env], f" (from {loc.env})"
    if isinstance(where, str) and where == SAMPLE:
        return loc.load_sample()

    if where is not None:
        path = Path(where).expanduser()
        found = loc.find_form(path)
        if found is not None:
            return loc.read_form(*found, use_cache=use_cache)
        why = loc.not_found(path, origin)
        if fallback_to_sample:
            return loc.fallback(f"full {loc.kind} {why}")
        raise loc.named_location_error(why)

    home = cache.cache_dir() / loc.home
    found = loc.find_form(home)
    if found is not None:
        return loc.read_form(*found, use_cache=use_cache)
    why = loc.not_found(home, "")
    if download:
        try:
            tarball = loc.fetch(home, progress)
        except DataError as exc:
            why += f"; {exc}"
        else:
            return loc.read_form("tarball", tarball, use_cache=use_cache)
    else:
        why += "; downloading is off"
    if fallback_to_sample:
        return loc.fallback(f"full {loc.kind} {why}")
    raise DataError(
        f"{loc.kind} {why}; get {loc.tarball} and point at it with --data-dir DIR "
        f"or {loc.env}=DIR (or use --data-dir sample)"
    )


CIFAR10_LOCATOR = Locator(
    kind="CIFAR-10",
    env="CIFARLAB_DATA",
    home="cifar10",
    folder=FOLDER_NAME,
    tarball=TARBALL_NAME,
    sample=sample_dir(),
    readers=_READERS,
    find_form=find_form,
    # Module attributes, read at call time, so tests can serve a local archive.
    fetch=lambda home, progress: _download.download_cifar10(
        home, url=_download.OFFICIAL_URL, md5=_download.OFFICIAL_MD5, progress=progress
    ),
)


def load_sample() -> LabelledImages:
    """The bundled CIFAR-10 sample (official python layout), never cached."""
    return CIFAR10_LOCATOR.load_sample()


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
        raise CIFAR10_LOCATOR.named_location_error(CIFAR10_LOCATOR.not_found(path, origin))
    return None


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
    return find_or_fetch(
        CIFAR10_LOCATOR,
        data_dir,
        download=download,
        use_cache=use_cache,
        fallback_to_sample=fallback_to_sample,
        progress=progress,
    )
