"""The complete CIFAR-10 (skipped unless CIFARLAB_DATA names a full copy)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data import load_cifar10

pytestmark = pytest.mark.full_data


def test_full_counts_and_shapes(full_data):
    assert full_data.train_images.shape == (50_000, 32, 32, 3)
    assert full_data.test_images.shape == (10_000, 32, 32, 3)
    assert full_data.train_images.dtype == np.uint8
    assert np.array_equal(np.bincount(full_data.train_labels), [5000] * 10)
    assert np.array_equal(np.bincount(full_data.test_labels), [1000] * 10)
    assert not full_data.is_sample


def test_full_data_through_the_cli(full_data, helpers, tmp_path):
    data_dir = Path(os.environ["CIFARLAB_DATA"])  # set, or full_data would have skipped
    res = helpers.run_cli("data", "--data-dir", str(data_dir), "--out", str(tmp_path / "figs"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "train: 50,000 images, 5,000 per class" in lines
    assert "test: 10,000 images, 1,000 per class" in lines
    assert "images: 32×32×3 uint8" in lines
    assert len(list((tmp_path / "figs").glob("*.png"))) == 4


def test_second_full_load_comes_from_the_cache(full_data):
    data_dir = Path(os.environ["CIFARLAB_DATA"])  # set, or full_data would have skipped
    again = load_cifar10(data_dir)
    assert again.from_cache
    assert np.array_equal(again.train_images, full_data.train_images)


def test_sample_is_a_labelled_subset_of_the_full_data(full_data, sample_data):
    for split in ("train", "test"):
        full = getattr(full_data, f"{split}_images").reshape(-1, 3072)
        labels = getattr(full_data, f"{split}_labels")
        index = {row.tobytes(): lab for row, lab in zip(full, labels, strict=True)}
        sample = getattr(sample_data, f"{split}_images").reshape(-1, 3072)
        sample_labels = getattr(sample_data, f"{split}_labels")
        assert all(
            index.get(r.tobytes()) == lab for r, lab in zip(sample, sample_labels, strict=True)
        )


def test_make_sample_is_deterministic(full_data, tmp_path):
    script = Path(__file__).resolve().parents[2] / "scripts" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("make_sample", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = Path(os.environ["CIFARLAB_DATA"])
    a = module.make_sample(source, tmp_path / "a")
    b = module.make_sample(source, tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 7
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
