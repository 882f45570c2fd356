"""CIFAR-10-C generated from a test set: seeded, independent per cell, cached, never stale."""

from __future__ import annotations

import numpy as np
import pytest

from cifarlab.data import cifar10c
from cifarlab.data.cache import cache_dir


@pytest.fixture(scope="module")
def test_images(sample_data) -> np.ndarray:
    return sample_data.test_images[:40]


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_cell_is_the_same_whatever_else_is_asked_for(test_images):
    alone = cifar10c.generate(test_images, "shot_noise", 2, seed=3)
    cifar10c.generate(test_images, "gaussian_noise", 2, seed=3)  # another cell first
    assert np.array_equal(alone, cifar10c.generate(test_images, "shot_noise", 2, seed=3))
    assert alone.shape == test_images.shape and alone.dtype == np.uint8
    assert not np.array_equal(alone, cifar10c.generate(test_images, "shot_noise", 2, seed=4))
    assert not np.array_equal(alone, cifar10c.generate(test_images, "shot_noise", 3, seed=3))


def test_cache_hit_returns_the_identical_array_without_generating(
    test_images, own_cache, monkeypatch
):
    first = cifar10c.corrupted_test_images(test_images, "impulse_noise", 1, seed=0)
    path = cifar10c.cell_path(cifar10c.test_set_id(test_images), "impulse_noise", 1, 0)
    assert path.is_file() and path.is_relative_to(cache_dir())

    def no_generating(*args, **kwargs):
        raise AssertionError("generated again instead of read from the cache")

    monkeypatch.setattr(cifar10c, "generate", no_generating)
    again = cifar10c.corrupted_test_images(test_images, "impulse_noise", 1, seed=0)
    assert np.array_equal(first, again) and again.dtype == np.uint8


def test_a_damaged_cell_is_rebuilt_not_trusted(test_images, own_cache):
    first = cifar10c.corrupted_test_images(test_images, "contrast", 2)
    path = cifar10c.cell_path(cifar10c.test_set_id(test_images), "contrast", 2, 0)
    raw = bytearray(path.read_bytes())
    raw[-7] ^= 0xFF  # one flipped byte in the pixels
    path.write_bytes(bytes(raw))
    assert np.array_equal(cifar10c.corrupted_test_images(test_images, "contrast", 2), first)


def test_another_test_set_or_version_never_reads_this_ones_cells(
    test_images, own_cache, monkeypatch
):
    cifar10c.corrupted_test_images(test_images, "brightness", 1)
    other = test_images.copy()
    other[0, 0, 0, 0] ^= 1
    assert cifar10c.test_set_id(other) != cifar10c.test_set_id(test_images)
    monkeypatch.setattr(cifar10c, "VERSION", cifar10c.VERSION + 1)
    newer = cifar10c.cell_path(cifar10c.test_set_id(test_images), "brightness", 1, 0)
    assert not newer.exists()
    cifar10c.corrupted_test_images(test_images, "brightness", 1)
    cells = sorted(p.name for p in newer.parent.glob("brightness-*.npy"))
    assert cells == [newer.name]  # the old version's cell was pruned


def test_unknown_names_and_severities_are_refused(test_images):
    with pytest.raises(ValueError, match="unknown corruption"):
        cifar10c.generate(test_images, "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        cifar10c.generate(test_images, "fog", 0)
