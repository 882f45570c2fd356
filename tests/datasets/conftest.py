"""Fixtures for the dataset tests (issue 31): the bundled CIFAR-10 sample relabelled into
20 classes and called "cifar100-coarse" (each CIFAR-10 class split in two by image index):
real images, another dataset's name and class count; a short run trained on it; and
``asked``, which replaces ``cifarlab.data.datasets.load_dataset`` by one that hands these
data out and records what it was asked for.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data import datasets
from cifarlab.data.readers import LabelledImages
from cifarlab.errors import DataError
from cifarlab.train.loop import train

QUIET = {"progress": False, "log": lambda s: None}
SHORT = {"train.epochs": 0.2, "train.eval_points": 1, "system.threads": 1}
COARSE = {**SHORT, "data.dataset": "cifar100-coarse", "data.normalize": "train"}


def relabel(data: LabelledImages, dataset: str = "cifar100-coarse") -> LabelledImages:
    """The sample in 20 classes: class c's images with an even index become 2c, odd 2c + 1."""

    def labels(y: np.ndarray) -> np.ndarray:
        return (y * 2 + np.arange(len(y)) % 2).astype(np.int64)

    return replace(
        data,
        train_labels=labels(data.train_labels),
        test_labels=labels(data.test_labels),
        classes=tuple(f"super{i:02d}" for i in range(20)),
        source="relabelled sample (20 classes)",
        is_sample=False,
        dataset=dataset,
    )


@pytest.fixture(scope="session")
def coarse(sample_data) -> LabelledImages:
    return relabel(sample_data)


@pytest.fixture(scope="session")
def coarse_run(tmp_path_factory, coarse) -> Path:
    out = tmp_path_factory.mktemp("coarse") / "run"
    train("seed-baseline", out_dir=out, data=coarse, overrides=COARSE, **QUIET)
    return out


@pytest.fixture
def asked(monkeypatch, coarse):
    """Replace load_dataset; the list records (spec, where) of every call."""
    calls: list[tuple[datasets.DatasetSpec, object]] = []

    def fake(spec, where=None, **kwargs):
        calls.append((spec, where))
        if spec.name != "cifar100-coarse":
            raise DataError(f"fake loader: no {spec.name}")
        return replace(coarse, source=f"fake {spec.name} at {where}")

    monkeypatch.setattr(datasets, "load_dataset", fake)
    return calls
