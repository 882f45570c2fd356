"""Batches without per-image Python work: the dataset is one uint8 tensor.

A batch is indexed out of the resident uint8 tensor, converted to float once,
augmented as a whole and normalised (airbench's device-resident data).
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def to_uint8_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 32, 32, 3) uint8 HWC numpy -> (N, 3, 32, 32) uint8 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` with (3,) mean and std, on a [0, 1] batch."""
    return (x - mean[:, None, None]) / std[:, None, None]


def to_float(xb: torch.Tensor) -> torch.Tensor:
    """uint8 batch -> float32 in [0, 1] (ToTensor's scaling)."""
    return xb.float().div_(255.0)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch), so a resumed
    run or another process sees the same order without carrying generator state."""
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch, stream=1))
    return torch.randperm(n, generator=gen)


def alternating_flips(idx: torch.Tensor, n: int, seed: int, epoch: int) -> torch.Tensor:
    """Which of the training images ``idx`` (of ``n``) to mirror in epoch ``epoch`` under
    airbench's alternating flip (Jordan 2024, arXiv 2404.00498): a fair coin per
    image in epoch 0, fixed by the seed, and the opposite of the previous epoch in every later
    one, so each image is seen both ways in every two epochs instead of at random. A pure
    function of (seed, image, epoch), like ``epoch_order``: a resumed run or another process
    agrees."""
    return _first_epoch_flips(n, seed).to(idx.device)[idx] ^ bool(epoch % 2)


@functools.lru_cache(maxsize=4)
def _first_epoch_flips(n: int, seed: int) -> torch.Tensor:
    """The seed's coin per image (n,) for epoch 0; drawn once, not at every step (read-only)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, 0, stream=0))
    return torch.rand(n, generator=gen) < 0.5


def step_generator(
    seed: int, step: int, rank: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    """The augmentation generator of one optimizer step (pure function of seed, step, rank)."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, step, stream=2 + rank))


def derive_seed(seed: int, index: int, stream: int) -> int:
    """Mix (seed, index, stream) into a 63-bit seed (SplitMix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB) & (
        2**64 - 1
    )
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (z ^ (z >> 31)) & (2**63 - 1)
