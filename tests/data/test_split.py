"""split_train_val: stratified, seeded, disjoint and covering."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarlab.data import split_train_val


def _check(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    train, val = split_train_val(labels, val_fraction, seed)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # sorted, no repeats
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.union1d(train, val), np.arange(len(labels)))
    for c in np.unique(labels):
        n_c = int((labels == c).sum())
        in_val = int((labels[val] == c).sum())
        assert abs(in_val - val_fraction * n_c) <= 1, (c, in_val, n_c)
    assert abs(len(val) - val_fraction * len(labels)) <= 1
    return train, val


def test_sample_split_is_stratified(sample_data):
    train, val = _check(sample_data.train_labels, 0.2, 42)
    assert len(val) == 400
    assert np.array_equal(np.bincount(sample_data.train_labels[val]), [40] * 10)


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=1, max_size=300),
    val_fraction=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_properties_hold_for_any_labels(labels, val_fraction, seed):
    _check(np.array(labels, dtype=np.int64), val_fraction, seed)


def test_uneven_classes_stay_within_one_image():
    labels = np.repeat(np.arange(10), [7, 13, 1, 0, 25, 3, 3, 3, 9, 11])
    for frac in (0.1, 0.15, 0.33, 0.5, 0.9):
        _check(labels, frac, 0)


def test_same_seed_same_split_other_seed_other_split(sample_data):
    labels = sample_data.train_labels
    a_train, a_val = split_train_val(labels, 0.2, seed=1)
    b_train, b_val = split_train_val(labels, 0.2, seed=1)
    _, c_val = split_train_val(labels, 0.2, seed=2)
    assert np.array_equal(a_val, b_val) and np.array_equal(a_train, b_train)
    assert not np.array_equal(a_val, c_val)


def test_zero_fraction_gives_an_empty_val_set(sample_data):
    train, val = split_train_val(sample_data.train_labels, 0.0)
    assert val.size == 0 and val.dtype == np.int64
    assert np.array_equal(train, np.arange(2000))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_fraction_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val(np.zeros(10, dtype=np.int64), bad)
