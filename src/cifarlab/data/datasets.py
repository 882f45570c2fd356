"""Which dataset a run reads: the names a recipe's ``data.dataset`` takes, and their loaders.

==================  ===========================================================  =========
name                what                                                         classes
==================  ===========================================================  =========
``cifar10``         CIFAR-10 (:mod:`cifarlab.data.locate`), the default          10
``cifar100``        CIFAR-100 with its fine labels (:mod:`cifarlab.data.cifar100`) 100
``cifar100-coarse`` CIFAR-100 with its 20 coarse labels (superclasses)           20
``folder``          a user's image folders, one per class (:mod:`cifarlab.data.folders`) the folders'
==================  ===========================================================  =========

A :class:`DatasetSpec` is what a recipe says about the dataset beyond where it is (the
``where`` argument: a path, ``"sample"``, or None for the dataset's default location);
:func:`load_dataset` reads it. Every loader returns :class:`~cifarlab.data.readers.LabelledImages`
whose ``dataset`` is the spec's name.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from cifarlab.data.readers import LabelledImages

DATASETS = ("cifar10", "cifar100", "cifar100-coarse", "folder")
DEFAULT = "cifar10"


@dataclass(frozen=True)
class DatasetSpec:
    """The recipe's word on the dataset (its ``data`` section, less the location)."""

    name: str = DEFAULT  # one of DATASETS
    image_size: int = 32  # folder: images brought to image_size x image_size (see folders)
    split_seed: int = 42  # folder without a test/ folder: seed of the held-out test split
    test_fraction: float = 0.2  # folder without a test/ folder: share held out as test set

    def record(self) -> dict[str, Any]:
        """What a run records of the spec (beside the data's classes and fingerprint)."""
        return asdict(self)


def load_dataset(
    spec: DatasetSpec, where: str | os.PathLike[str] | None = None, **options: bool
) -> LabelledImages:
    """Read the dataset ``spec`` names from ``where``. ``options``: ``download``,
    ``use_cache``, ``fallback_to_sample``, ``progress``, as
    :func:`cifarlab.data.locate.load_cifar10` takes them (where the rules are); image
    folders take ``use_cache`` only, as they are never downloaded or stood in for."""
    if spec.name == "cifar10":
        from cifarlab.data.locate import load_cifar10

        return load_cifar10(where, **options)
    if spec.name in ("cifar100", "cifar100-coarse"):
        from cifarlab.data.cifar100 import load_cifar100

        return load_cifar100(where, coarse=spec.name == "cifar100-coarse", **options)
    if spec.name == "folder":
        from cifarlab.data.folders import load_image_folders

        return load_image_folders(
            where,
            image_size=spec.image_size,
            split_seed=spec.split_seed,
            test_fraction=spec.test_fraction,
            use_cache=options.get("use_cache", True),
        )
    raise ValueError(f"unknown dataset {spec.name!r}; choose one of {', '.join(DATASETS)}")
