"""A stratified, seeded train/validation split."""

from __future__ import annotations

import numpy as np


def _val_counts(class_sizes: np.ndarray, val_fraction: float) -> np.ndarray:
    """Per-class validation counts, each within one image of ``val_fraction * size``.

    Largest remainder: floor every class's exact share, then hand the images still
    owed to the overall total (rounded half up) to the classes with the largest
    fractional parts (ties to the lower class index), so the total is exact too.
    """
    exact = class_sizes * val_fraction
    counts = np.floor(exact).astype(np.int64)
    owed = int(np.floor(class_sizes.sum() * val_fraction + 0.5)) - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: max(owed, 0)]] += 1
    return np.minimum(counts, class_sizes)


def split_train_val(
    labels: np.ndarray, val_fraction: float = 0.2, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0..len(labels)-1`` into ``(train_idx, val_idx)``, stratified by label.

    Each class gives ``val_fraction`` of its images (within one image) to validation,
    chosen by a ``np.random.default_rng(seed)`` permutation per class. Both arrays
    are sorted int64, disjoint, and together cover every index.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    counts = _val_counts(sizes, val_fraction)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        is_val[rng.permutation(members)[: counts[c]]] = True
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)
