"""A 100-class dataset for tests, built from the bundled CIFAR-10 sample.

Each CIFAR-10 class is split into 10 made-up sub-classes by a seeded shuffle of its images,
so the sample's 2,000 training and 500 test images become 100 classes of 20 and 5. The
names are of CIFAR-100's lengths (``aquarium_fish``, ``large_man-made_outdoor_things``);
the confusions a model makes fall mostly within a CIFAR-10 class, as CIFAR-100's do within
a superclass.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cifarlab.data.readers import LabelledImages

QUALIFIERS = (
    "small",
    "large",
    "aquarium",
    "striped",
    "wild",
    "toy",
    "sweet",
    "man-made_outdoor",
    "large_man-made_outdoor",
    "spotted",
)


def class_names(base: tuple[str, ...]) -> tuple[str, ...]:
    """100 names, ``<qualifier>_<base class>``: 9 to 33 characters long."""
    return tuple(f"{q}_{b}" for b in base for q in QUALIFIERS)


def _relabel(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(labels)
    for c in range(10):
        where = np.flatnonzero(labels == c)
        order = rng.permutation(len(where))
        out[where[order]] = c * 10 + np.arange(len(where)) % 10
    return out


def hundred_classes(data: LabelledImages, seed: int = 0) -> LabelledImages:
    """``data`` (10 classes) relabelled into 100 balanced classes, 10 per original class."""
    rng = np.random.default_rng(seed)
    return dataclasses.replace(
        data,
        train_labels=_relabel(data.train_labels, rng),
        test_labels=_relabel(data.test_labels, rng),
        classes=class_names(tuple(data.classes)),
        source=f"{data.source}, relabelled into 100 classes (seed {seed})",
        dataset="folder",
    )
