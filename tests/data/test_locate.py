"""Where load_cifar10 looks: data_dir, then CIFARLAB_DATA, then the cache folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cifarlab.data import download as dl
from cifarlab.data import load_cifar10, sample_dir
from cifarlab.errors import DataError

pytestmark = pytest.mark.usefixtures("own_cache")


@pytest.fixture
def no_network(monkeypatch):
    """Point the 'official' URL at a closed local port: downloads fail at once."""
    monkeypatch.setattr(dl, "OFFICIAL_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")


def test_sample_by_name():
    data = load_cifar10("sample")
    assert data.is_sample and data.source.startswith("bundled sample (2,000 train / 500 test)")
    assert str(sample_dir()) in data.source


def test_sample_dir_is_the_official_layout():
    names = sorted(p.name for p in sample_dir().iterdir())
    assert names == ["batches.meta", *[f"data_batch_{i}" for i in range(1, 6)], "test_batch"]


def test_argument_wins_over_environment(sample_copy, monkeypatch, tmp_path):
    monkeypatch.setenv("CIFARLAB_DATA", str(tmp_path / "nowhere"))
    data = load_cifar10(sample_copy, use_cache=False)
    assert str(sample_copy) in data.source


def test_environment_is_used_without_an_argument(sample_copy, monkeypatch):
    monkeypatch.setenv("CIFARLAB_DATA", str(sample_copy.parent))
    assert str(sample_copy) in load_cifar10(use_cache=False).source
    monkeypatch.setenv("CIFARLAB_DATA", "sample")
    assert load_cifar10().is_sample


def test_cache_folder_is_used_last(own_cache, no_network, sample_data):
    shutil.copytree(sample_dir(), own_cache / "cifar10" / "cifar-10-batches-py")
    data = load_cifar10(use_cache=False)
    assert str(own_cache / "cifar10") in data.source
    assert np.array_equal(data.train_labels, sample_data.train_labels)


def test_missing_explicit_dir_lists_what_was_looked_for(tmp_path, no_network):
    where = tmp_path / "empty"
    where.mkdir()
    with pytest.raises(DataError) as err:
        load_cifar10(where)
    msg = str(err.value)
    for looked in ("cifar-10-batches-py/", "cifar-10-python.tar.gz", "train/ + test/"):
        assert f"{where}/{looked}" in msg
    assert "--data-dir DIR" in msg and "CIFARLAB_DATA=DIR" in msg and "\n" not in msg


def test_explicit_dir_from_environment_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARLAB_DATA", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"not found in .*typo \(from CIFARLAB_DATA\)"):
        load_cifar10()


def test_nothing_anywhere_and_download_fails(own_cache, no_network):
    with pytest.raises(DataError) as err:
        load_cifar10(progress=False)
    msg = str(err.value)
    assert f"not found in {own_cache / 'cifar10'}" in msg
    assert "download of http://127.0.0.1:9/cifar-10-python.tar.gz failed" in msg
    assert "--data-dir DIR" in msg and "CIFARLAB_DATA=DIR" in msg and "\n" not in msg
    leftovers = list((own_cache / "cifar10").iterdir())
    assert leftovers == []


def test_download_off_says_so(own_cache):
    with pytest.raises(DataError, match="downloading is off"):
        load_cifar10(download=False)
    assert not (own_cache / "cifar10").exists() or not any((own_cache / "cifar10").iterdir())


def test_fallback_to_sample_says_why(no_network, tmp_path):
    data = load_cifar10(download=True, fallback_to_sample=True, progress=False)
    assert data.is_sample
    assert data.source.startswith(
        "bundled sample (2,000 train / 500 test): full CIFAR-10 not found in"
    )
    assert "download of http://127.0.0.1:9" in data.source
    explicit = load_cifar10(tmp_path / "typo", fallback_to_sample=True)
    assert explicit.is_sample and f"not found in {tmp_path / 'typo'}" in explicit.source


def test_fallback_never_hides_a_damaged_copy(sample_copy):
    (sample_copy / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test_batch: truncated or not a CIFAR-10 batch"):
        load_cifar10(sample_copy, fallback_to_sample=True)
