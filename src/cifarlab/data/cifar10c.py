"""CIFAR-10-C made here from the test set: seeded, cached, never downloaded.

The same corruptions make CIFAR-100-C from a CIFAR-100 test set (fine or coarse labels):
its cells are cached under a test set id that includes the dataset's name
(:func:`test_set_id`), so they never share an entry with CIFAR-10's. The corruptions are
defined for 32x32 images only (:mod:`cifarlab.data.corruptions`).

:func:`corrupted_test_images` returns one corruption at one severity of a test set as
uint8 (N, 32, 32, 3), the layout of the test set itself (and of the published CIFAR-10-C
.npy files). The images are corrupted by :mod:`cifarlab.data.corruptions` on the CPU (so
the result does not depend on the device), in chunks of ``CHUNK`` images, chunk ``j`` with a
generator seeded from (seed, corruption, severity, j): any one cell can be made alone and
is the same whichever others are asked for.

Each cell is cached (:func:`cifarlab.data.cache.save_array`) in
``cache_dir()/corruptions/<test set id>/<name>-s<severity>-seed<seed>-v<VERSION>.npy``; the
test set id hashes the images and labels, so another test set, or an edited one, never
reads this one's cells, and ``VERSION`` changes with any change to what a corruption
computes. A full test set's 75 cells take 2.3 GB, like the published CIFAR-10-C. A cell whose
file is truncated or altered fails its checksum: it is made again, and the caller's ``log``
gets one ``cifarlab: warning:`` line saying so (likewise when a cell cannot be saved).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cifarlab.data.batches import derive_seed
from cifarlab.data.cache import cache_dir, load_array, save_array
from cifarlab.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt

VERSION = 1  # bump whenever a corruption's output changes: old cells are then not read
DEFAULT_SEED = 0
CHUNK = 1000  # images per generator; part of the definition (VERSION covers a change)
NAMES = tuple(CORRUPTIONS)


def test_set_id(
    images: np.ndarray, labels: np.ndarray | None = None, dataset: str = "cifar10"
) -> str:
    """A short hash of a test set's images (and labels): the cache's name for it.

    ``dataset`` (a name of :data:`cifarlab.data.datasets.DATASETS`) is part of the hash for
    every dataset but CIFAR-10, whose ids stay as they were: CIFAR-100-C's cells are never
    CIFAR-10-C's, even for the same pixels."""
    digest = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    if labels is not None:
        digest.update(memoryview(np.ascontiguousarray(labels)).cast("B"))
    if dataset != "cifar10":
        digest.update(f"dataset={dataset}".encode())
    return digest.hexdigest()[:16]


def corruptions_dir() -> Path:
    return cache_dir() / "corruptions"


def cell_path(test_id: str, name: str, severity: int, seed: int) -> Path:
    return corruptions_dir() / test_id / f"{name}-s{severity}-seed{seed}-v{VERSION}.npy"


def _stream(name: str, severity: int) -> int:
    return 100 + NAMES.index(name) * 10 + severity


def generate(images: np.ndarray, name: str, severity: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``name`` at ``severity`` applied to uint8 images (N, 32, 32, 3), without the cache."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(NAMES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    out = np.empty_like(images)
    for j, start in enumerate(range(0, len(images), CHUNK)):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + CHUNK]))
        gen = torch.Generator().manual_seed(derive_seed(seed, j, _stream(name, severity)))
        done = corrupt(chunk.permute(0, 3, 1, 2), name, severity, gen)
        out[start : start + CHUNK] = done.permute(0, 2, 3, 1).numpy()
    return out


def corrupted_test_images(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int = DEFAULT_SEED,
    *,
    test_id: str | None = None,
    cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """One cell of CIFAR-10-C for the test set ``images`` (uint8, N x 32 x 32 x 3): from the
    cache, else generated and cached. ``test_id``: :func:`test_set_id` of ``images``, when the
    caller has it already (hashing 10,000 images for each of 75 cells would add up)."""
    if not cache:
        return generate(images, name, severity, seed)
    test_id = test_id or test_set_id(images)
    path = cell_path(test_id, name, severity, seed)
    key = {
        "corruption": name,
        "severity": severity,
        "seed": seed,
        "version": VERSION,
        "chunk": CHUNK,
        "test_set": test_id,
        "n": len(images),
    }

    def say(problem: str) -> None:  # the CLI prints our line; a library caller gets a warning
        if log is not None:
            log(f"cifarlab: warning: {problem}")
        else:
            warnings.warn(problem, stacklevel=3)

    was_there = path.is_file()
    hit = load_array(path, key)  # checks the key, shape and checksum; deletes a bad entry
    if hit is not None and hit.shape == images.shape:
        return hit
    if was_there:  # not "not cached yet": say what happened, once, in one line
        say(
            f"{path}: the cached corrupted images were incomplete or damaged "
            f"(truncated, altered or of another test set); removed and made again"
        )
    if log is not None:
        log(f"generating {name} severity {severity} for {len(images):,} test images (cached after)")
    out = generate(images, name, severity, seed)
    with warnings.catch_warnings(record=True) as caught:  # a full disk: say it as our line
        warnings.simplefilter("always")
        save_array(path, out, key)
    for w in caught:
        say(f"{w.message}; the images are made again next time")
    _prune_versions(path)
    return out


def _prune_versions(path: Path) -> None:
    """Remove the same cell made by other VERSIONs: they are never read again."""
    stem = path.name.rsplit("-v", 1)[0]
    for other in path.parent.glob(f"{stem}-v*.npy*"):
        if not other.name.startswith(path.name):
            other.unlink(missing_ok=True)
