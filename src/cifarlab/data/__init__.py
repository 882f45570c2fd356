"""CIFAR-10 as numpy arrays: find, read, cache, download, split, explore.

Nothing here does I/O at import time or imports torch; PIL, tqdm and matplotlib
are imported only by the functions that need them.

    >>> from cifarlab.data import load_cifar10, split_train_val
    >>> data = load_cifar10("sample")
    >>> train_idx, val_idx = split_train_val(data.train_labels, val_fraction=0.2, seed=42)
"""

from __future__ import annotations

from cifarlab.data.cache import cache_dir
from cifarlab.data.download import OFFICIAL_MD5, OFFICIAL_URL, download_cifar10
from cifarlab.data.locate import load_cifar10, sample_dir
from cifarlab.data.readers import CIFAR10, LabelledImages
from cifarlab.data.split import split_train_val

__all__ = [
    "CIFAR10",
    "LabelledImages",
    "OFFICIAL_MD5",
    "OFFICIAL_URL",
    "cache_dir",
    "download_cifar10",
    "load_cifar10",
    "sample_dir",
    "split_train_val",
]
