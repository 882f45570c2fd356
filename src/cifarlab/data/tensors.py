"""A run's data as device tensors, and which dataset a recipe or a finished run asks for.

``load_data_for`` applies the data rule (``--data-dir`` first, then the recipe's
``data.source``; ``auto`` falls back to the dataset's bundled sample, saying so), and a run
that was trained on a bundled sample is always reopened on the sample, with no search and no
network. ``prepare_tensors`` splits the training set (stratified, seeded), settles the
normalisation (the recipe's, or the training split's own) and moves every split to the
device once, as uint8 (airbench's device-resident data).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cifarlab.data import datasets
from cifarlab.data.batches import to_uint8_tensor
from cifarlab.data.datasets import DatasetSpec
from cifarlab.data.locate import SAMPLE
from cifarlab.data.readers import LabelledImages
from cifarlab.data.split import split_train_val


@dataclass
class TrainTensors:
    """The run's data, resident on the device as uint8 images and int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    classes: list[str]
    source: str
    is_sample: bool
    fingerprint: str
    dataset: str = "cifar10"
    # The normalisation as plain numbers, as the run records it: the recipe's values as
    # written, or those computed from the training split (data.normalize = "train").
    normalization: dict[str, list[float]] | None = None

    def data_record(self) -> dict[str, Any]:
        """What a checkpoint and metrics.json record about the data (``spec`` reopens it)."""
        return {
            "dataset": self.dataset,
            "source": self.source,
            "spec": SAMPLE if self.is_sample else None,
            "fingerprint": self.fingerprint,
            "n_train": len(self.train_y),
            "n_val": len(self.val_y),
            "n_test": len(self.test_y),
        }


def prepare_tensors(
    data: LabelledImages,
    *,
    val_fraction: float,
    split_seed: int,
    mean: list[float] | tuple[float, ...],
    std: list[float] | tuple[float, ...],
    device: torch.device,
    normalize: str = "recipe",
) -> TrainTensors:
    """Split the training set (stratified, seeded) and move everything to ``device`` once.

    ``normalize``: "recipe" uses ``mean`` and ``std``; "train" replaces them with the
    per-channel statistics of the training split's pixels (:func:`channel_stats`).
    The fingerprint covers the labels and the split; for a dataset other than CIFAR-10 also
    its name, class names and image size, so a run is never resumed or calibrated on another
    dataset that happens to share its labels (CIFAR-10's stay as they were recorded).
    """
    train_idx, val_idx = split_train_val(data.train_labels, val_fraction, split_seed)
    if normalize == "train":
        mean, std = channel_stats(data.train_images, train_idx)
    elif normalize != "recipe":
        raise ValueError(f"normalize must be 'recipe' or 'train', got {normalize!r}")
    digest = hashlib.sha1()
    for arr in (data.train_labels, data.test_labels, train_idx):
        digest.update(np.ascontiguousarray(arr).tobytes())
    if data.dataset != "cifar10":  # CIFAR-10's fingerprints stay as they were recorded
        side = int(data.train_images.shape[1])
        digest.update(json.dumps([data.dataset, list(data.classes), side]).encode())
    return TrainTensors(
        train_x=to_uint8_tensor(data.train_images[train_idx], device),
        train_y=torch.from_numpy(data.train_labels[train_idx]).to(device),
        val_x=to_uint8_tensor(data.train_images[val_idx], device),
        val_y=torch.from_numpy(data.train_labels[val_idx]).to(device),
        test_x=to_uint8_tensor(data.test_images, device),
        test_y=torch.from_numpy(data.test_labels).to(device),
        mean=torch.tensor(mean, device=device),
        std=torch.tensor(std, device=device),
        classes=list(data.classes),
        source=data.source,
        is_sample=data.is_sample,
        fingerprint=digest.hexdigest()[:16],
        dataset=data.dataset,
        normalization={"mean": list(mean), "std": list(std)},
    )


def channel_stats(
    images: np.ndarray, index: np.ndarray, chunk: int = 4096
) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of ``images[index]`` on the
    [0, 1] scale, summed in float64 a chunk at a time (no float copy of the whole set)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(index), chunk):
        pixels = images[index[start : start + chunk]].reshape(-1, 3).astype(np.float64)
        total += pixels.sum(axis=0)
        squares += np.square(pixels).sum(axis=0)
    n = max(len(index) * images.shape[1] * images.shape[2], 1)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    std = np.where(std > 0, std, 255.0)  # a constant channel: leave its scale as it is
    return [round(float(m) / 255, 6) for m in mean], [round(float(s) / 255, 6) for s in std]


def load_data_for(
    recipe_source: str,
    data_dir: str | None,
    log: Callable[[str], None],
    *,
    run_data: dict[str, Any] | None = None,
    spec: DatasetSpec | None = None,
) -> LabelledImages:
    """The dataset a run asks for (``spec``: the recipe's ``data.dataset`` and its
    settings; CIFAR-10 when None).

    ``data_dir`` (the user's ``--data-dir``) wins; else a run that recorded training on a
    bundled sample (``run_data["spec"] == "sample"``, from its checkpoint) reopens the sample
    without searching or downloading; else the recipe's ``data.source``, where ``auto`` falls
    back to the bundled sample, saying so. A folder dataset has neither a default location
    nor a sample: without ``data_dir`` its ``data.source`` must be its path (the folder
    reader's DataError, ``cifarlab.data.folders.NO_FOLDER``).
    """
    spec = spec or DatasetSpec()
    if data_dir is not None:
        data = datasets.load_dataset(spec, data_dir)
    elif run_data is not None and run_data.get("spec") == SAMPLE:
        data = datasets.load_dataset(spec, SAMPLE)
    elif recipe_source == "auto":
        data = datasets.load_dataset(spec, None, fallback_to_sample=True)
    else:
        data = datasets.load_dataset(spec, recipe_source)
    log(f"data: {data.source}")
    return data
