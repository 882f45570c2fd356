"""A run's data as device tensors, and which dataset a recipe or a finished run asks for.

``load_data_for`` applies the data rule (``--data-dir`` first, then the recipe's
``data.source``; ``auto`` falls back to the bundled sample, saying so), and a run that was
trained on the bundled sample is always reopened on the sample, with no search and no
network. ``prepare_tensors`` splits the training set (stratified, seeded) and moves every
split to the device once, as uint8 (airbench's device-resident data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cifarlab.data.batches import to_uint8_tensor
from cifarlab.data.locate import SAMPLE, load_cifar10, load_sample
from cifarlab.data.readers import CIFAR10
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

    def data_record(self) -> dict[str, Any]:
        """What a checkpoint and metrics.json record about the data (``spec`` reopens it)."""
        return {
            "source": self.source,
            "spec": SAMPLE if self.is_sample else None,
            "fingerprint": self.fingerprint,
            "n_train": len(self.train_y),
            "n_val": len(self.val_y),
            "n_test": len(self.test_y),
        }


def prepare_tensors(
    data: CIFAR10,
    *,
    val_fraction: float,
    split_seed: int,
    mean: list[float] | tuple[float, ...],
    std: list[float] | tuple[float, ...],
    device: torch.device,
) -> TrainTensors:
    """Split the training set (stratified, seeded) and move everything to ``device`` once."""
    train_idx, val_idx = split_train_val(data.train_labels, val_fraction, split_seed)
    digest = hashlib.sha1()
    for arr in (data.train_labels, data.test_labels, train_idx):
        digest.update(np.ascontiguousarray(arr).tobytes())
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
    )


def load_data_for(
    recipe_source: str,
    data_dir: str | None,
    log: Callable[[str], None],
    *,
    run_data: dict[str, Any] | None = None,
) -> CIFAR10:
    """The dataset a run asks for.

    ``data_dir`` (the user's ``--data-dir``) wins; else a run that recorded training on the
    bundled sample (``run_data["spec"] == "sample"``, from its checkpoint) reopens the sample
    without searching or downloading; else the recipe's ``data.source``, where ``auto`` falls
    back to the bundled sample, saying so.
    """
    if data_dir is not None:
        data = load_cifar10(data_dir)
    elif run_data is not None and run_data.get("spec") == SAMPLE:
        data = load_sample()
    elif recipe_source == "auto":
        data = load_cifar10(None, fallback_to_sample=True)
    else:
        data = load_cifar10(recipe_source)
    log(f"data: {data.source}")
    return data
