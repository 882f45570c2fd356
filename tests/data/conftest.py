"""Fixtures for the data tests: copies of the bundled sample in each on-disk form.

Everything is built from the real bundled sample (2,000 + 500 CIFAR-10 images)
inside pytest's tmp_path; the bundled files themselves are never modified.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cifarlab.data import CIFAR10, sample_dir


def copy_sample(dest: Path) -> Path:
    """Copy the sample's cifar-10-batches-py folder into ``dest``; return the copy."""
    folder = dest / "cifar-10-batches-py"
    shutil.copytree(sample_dir(), folder)
    for f in folder.iterdir():  # package files may be read-only; tests edit the copy
        f.chmod(0o644)
    return folder


def make_tarball(folder: Path, dest: Path) -> Path:
    """Pack a cifar-10-batches-py folder as the official archive does (folder inside)."""
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return dest


def write_image_tree(data: CIFAR10, root: Path, per_class: int | None = None) -> Path:
    """Write ``root/{train,test}/<class>/<index>.png``; zero-padded indices keep the order.

    ``per_class`` keeps only the first images of each class (a small, fast tree).
    """
    for split in ("train", "test"):
        images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
        for name in data.classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        seen = np.zeros(len(data.classes), dtype=int)
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            if per_class is not None and seen[lab] >= per_class:
                continue
            seen[lab] += 1
            Image.fromarray(img).save(root / split / data.classes[lab] / f"{i:05d}.png")
    return root


def write_batch(path: Path, data: object, labels: object) -> None:
    """Write a batch file the way Python 3 would re-save one (protocol 2, bytes keys)."""
    batch = {b"batch_label": b"test batch", b"labels": labels, b"data": data, b"filenames": []}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def record_sums(folder: Path) -> Path:
    """Write ``folder/MD5SUMS`` as ``md5sum`` would: how a user vouches for a copy of their own."""
    lines = [
        f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.name}\n"
        for f in sorted(folder.iterdir())
        if f.name != "MD5SUMS"
    ]
    (folder / "MD5SUMS").write_text("".join(lines))
    return folder / "MD5SUMS"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cifarlab ARGS`` in a fresh interpreter, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("CIFARLAB_DATA", None)  # the tests name their data explicitly
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the sample's cifar-10-batches-py folder."""
    return copy_sample(tmp_path)


@pytest.fixture(scope="session")
def sample_tree(tmp_path_factory: pytest.TempPathFactory, sample_data: CIFAR10) -> Path:
    """The whole sample as train/ + test/ PNG folders (built once per session)."""
    return write_image_tree(sample_data, tmp_path_factory.mktemp("sample-tree"))


@pytest.fixture
def small_tree(tmp_path: Path, sample_data: CIFAR10) -> Path:
    """A writable image tree with 3 images per class and split."""
    return write_image_tree(sample_data, tmp_path / "tree", per_class=3)


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty cache for this test only, and no CIFARLAB_DATA."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CIFARLAB_CACHE", str(cache))
    monkeypatch.delenv("CIFARLAB_DATA", raising=False)
    return cache


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The builders above, for tests (a conftest cannot be imported unambiguously)."""
    return SimpleNamespace(
        copy_sample=copy_sample,
        make_tarball=make_tarball,
        write_image_tree=write_image_tree,
        write_batch=write_batch,
        record_sums=record_sums,
        run_cli=run_cli,
    )
