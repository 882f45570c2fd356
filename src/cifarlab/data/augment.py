"""Augmentations as pure functions over a whole batch (STYLE.md 5; airbench's style).

Every function takes a float batch ``x`` of shape (N, C, H, W) with values in
[0, 1] and an explicit ``torch.Generator``, and returns a new batch; nothing
is done per image in Python. Random factors are drawn per image. Colour
operations follow torchvision's definitions (``transforms.v2.functional``):
brightness blends with black, contrast with the mean of the grayscale image,
saturation with the grayscale image, each clamped to [0, 1].
"""

from __future__ import annotations

import random

import torch

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale.
_GRAY = (0.2989, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    r, g, b = x.unbind(dim=-3)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(-3)


def flip_lr(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    mask = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def random_translate(
    x: torch.Tensor, pad: int, gen: torch.Generator, mode: str = "reflect"
) -> torch.Tensor:
    """Pad by ``pad`` pixels and take a random HxW crop per image (RandomCrop(padding=pad))."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(
        x, (pad, pad, pad, pad), mode="reflect" if mode == "reflect" else "constant"
    )
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image brightness factors (N,): blend with black."""
    return (x * factor[:, None, None, None]).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image contrast factors (N,): blend with the image's mean gray level."""
    mean = grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    f = factor[:, None, None, None]
    return (f * x + (1.0 - f) * mean).clamp_(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image saturation factors (N,): blend with the grayscale image."""
    f = factor[:, None, None, None]
    return (f * x + (1.0 - f) * grayscale(x)).clamp_(0.0, 1.0)


def color_jitter(
    x: torch.Tensor,
    gen: torch.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
) -> torch.Tensor:
    """ColorJitter(brightness, contrast, saturation) with a factor per image.

    torchvision applies the three in a random order per call; here one random
    order is drawn per batch (a per-image order would need a Python loop). The order is
    drawn on the host from the generator's seed: a ``randperm(...).tolist()`` on a GPU
    generator would make every training step wait for the device.
    """
    n = x.shape[0]
    ops = []
    if brightness > 0:
        ops.append(
            (
                adjust_brightness,
                _uniform(n, max(0.0, 1 - brightness), 1 + brightness, gen, x.device),
            )
        )
    if contrast > 0:
        ops.append(
            (adjust_contrast, _uniform(n, max(0.0, 1 - contrast), 1 + contrast, gen, x.device))
        )
    if saturation > 0:
        ops.append(
            (
                adjust_saturation,
                _uniform(n, max(0.0, 1 - saturation), 1 + saturation, gen, x.device),
            )
        )
    order = random.Random(gen.initial_seed()).sample(range(len(ops)), len(ops))
    for i in order:
        fn, factor = ops[i]
        x = fn(x, factor)
    return x


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a ``size``x``size`` square per image, centred anywhere (it may cross the border)."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=gen, device=x.device)
    cx = torch.randint(0, w, (n,), generator=gen, device=x.device)
    y0, x0 = cy - size // 2, cx - size // 2
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < (y0 + size)[:, None])  # (N, H)
    in_x = (xs >= x0[:, None]) & (xs < (x0 + size)[:, None])  # (N, W)
    keep = ~(in_y[:, :, None] & in_x[:, None, :])
    return x * keep[:, None, :, :].to(x.dtype)


def augment_batch(x: torch.Tensor, cfg, gen: torch.Generator) -> torch.Tensor:
    """Apply a recipe's AugmentConfig: flip, translate, colour jitter, cutout, in that order."""
    if cfg.flip:
        x = flip_lr(x, gen)
    if cfg.translate:
        x = random_translate(x, cfg.translate, gen, cfg.pad_mode)
    if cfg.brightness or cfg.contrast or cfg.saturation:
        x = color_jitter(x, gen, cfg.brightness, cfg.contrast, cfg.saturation)
    if cfg.cutout:
        x = cutout(x, cfg.cutout, gen)
    return x
