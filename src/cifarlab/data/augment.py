"""Augmentations as pure functions over a whole batch (airbench's style).

One concern, the augmentations a recipe names, and so one file longer than most (the
rule in docs/ARCHITECTURE.md).

Every function takes a float batch ``x`` of shape (N, C, H, W) with values in
[0, 1] and an explicit ``torch.Generator``, and returns a new batch; nothing
is done per image in Python. Random factors are drawn per image. Colour
operations follow torchvision's definitions (``transforms.v2.functional``):
brightness blends with black, contrast with the mean of the grayscale image,
saturation with the grayscale image, each clamped to [0, 1].

The regularisers of issue 17 follow torchvision v2 as well: TrivialAugmentWide's 14
operations (``trivial_augment``), RandomErasing (``random_erasing``), and MixUp / CutMix
with soft targets (``mix_batch``). None of them reads a tensor back on the host, so a training
step never waits for the device: random draws are made on the generator's device, and the few
that decide tensor shapes (how many images each TrivialAugment operation gets) are drawn on
the host from the generator's seed (``_host_rng``), as ``color_jitter`` draws its order.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F

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
    return flip_where(x, torch.rand(x.shape[0], generator=gen, device=x.device) < p)


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose ``mask`` entry is true."""
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


def _host_rng(gen: torch.Generator, stream: int) -> np.random.Generator:
    """A host-side generator derived from ``gen``'s seed, for draws that decide tensor shapes.

    Reading a draw of a GPU generator back would make the step wait for the device; a numpy
    generator seeded from (``gen.initial_seed()``, ``stream``) gives the same draws for the
    same step generator without touching the device. Like ``color_jitter``'s order, it depends
    on the generator's seed, not its position: call it once per function and step.
    """
    return np.random.default_rng([gen.initial_seed(), stream])


def _affine_dtype(device: torch.device) -> torch.dtype:
    """float64 for the per-image affine and box arithmetic that torchvision does in Python
    doubles (MPS has no float64: float32 there, which may move a rounding tie by a pixel)."""
    return torch.float32 if device.type == "mps" else torch.float64


# --------------------------------------------------------------------------- TrivialAugmentWide
# Müller & Hutter, "TrivialAugment: Tuning-free Yet State-of-the-Art Data Augmentation" (ICCV
# 2021), as torchvision.transforms.v2.TrivialAugmentWide: per image, one of 14 operations
# drawn uniformly, a magnitude bin drawn uniformly from 31, and for signed operations the
# sign + or - with probability 1/2. Geometric operations use nearest interpolation and fill 0.
# Each operation below is torchvision v2's functional on a float image, per image magnitudes.


def _inverse_affine(
    angle: torch.Tensor,
    translate_x: torch.Tensor,
    translate_y: torch.Tensor,
    shear_x: torch.Tensor,
    shear_y: torch.Tensor,
    center: tuple[float, float],
) -> torch.Tensor:
    """(N, 2, 3) float32: torchvision's ``_get_inverse_affine_matrix`` (scale 1) per image.

    Angles and shears in degrees, translations in pixels, each (N,) in ``_affine_dtype``; the
    centre in pixels from the image centre. The arithmetic is torchvision's, step for step, in
    float64 as its Python floats, so the float32 matrices agree with its own.
    """
    rot = angle * (math.pi / 180.0)  # math.radians
    sx = shear_x * (math.pi / 180.0)
    sy = shear_y * (math.pi / 180.0)
    cx, cy = center
    cos_sy = torch.cos(sy)
    tan_sx = torch.tan(sx)
    rot_minus_sy = rot - sy
    cx_plus_tx = cx + translate_x
    cy_plus_ty = cy + translate_y
    a = torch.cos(rot_minus_sy) / cos_sy
    b = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot_minus_sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = cx - m0 * cx_plus_tx - m1 * cy_plus_ty
    m5 = cy - m3 * cx_plus_tx - m4 * cy_plus_ty
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=-1).view(-1, 2, 3).float()


def _affine_nearest(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Each image resampled through its inverse affine matrix ``theta`` (N, 2, 3), nearest,
    fill 0: torchvision v2's ``_affine_grid`` + ``_apply_grid_transform`` with a matrix per image."""
    n, _, h, w = x.shape
    base = torch.empty(1, h, w, 3, dtype=theta.dtype, device=x.device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device))
    base[..., 1].copy_(
        torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device).unsqueeze_(-1)
    )
    base[..., 2].fill_(1)
    rescaled = theta.transpose(1, 2).clone()
    rescaled[..., 0] /= 0.5 * w
    rescaled[..., 1] /= 0.5 * h
    grid = torch.bmm(base.view(1, h * w, 3).expand(n, -1, -1), rescaled).view(n, h, w, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _as_affine(values: torch.Tensor) -> torch.Tensor:
    return values.to(_affine_dtype(values.device))


def _shear(x: torch.Tensor, factor: torch.Tensor, along_x: bool) -> torch.Tensor:
    """Shear by ``factor`` (N,) along x (x' = x + factor * y) or y, about the top-left corner."""
    h, w = x.shape[-2:]
    zero = torch.zeros_like(_as_affine(factor))
    degrees = torch.atan(_as_affine(factor)) * (180.0 / math.pi)
    sx, sy = (degrees, zero) if along_x else (zero, degrees)
    return _affine_nearest(x, _inverse_affine(zero, zero, zero, sx, sy, (-0.5 * w, -0.5 * h)))


def shear_x(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shear along x by ``factor`` (N,) (x' = x + factor * y about the top-left corner), as
    TrivialAugment's ShearX: ``affine(shear=[degrees(atan(factor)), 0], center=[0, 0])``."""
    return _shear(x, factor, along_x=True)


def shear_y(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shear along y by ``factor`` (N,), as TrivialAugment's ShearY."""
    return _shear(x, factor, along_x=False)


def translate_x(x: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Shift right by ``pixels`` (N,) whole pixels (negative: left), fill 0."""
    zero = torch.zeros_like(_as_affine(pixels))
    return _affine_nearest(x, _inverse_affine(zero, _as_affine(pixels), zero, zero, zero, (0, 0)))


def translate_y(x: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Shift down by ``pixels`` (N,) whole pixels (negative: up), fill 0."""
    zero = torch.zeros_like(_as_affine(pixels))
    return _affine_nearest(x, _inverse_affine(zero, zero, _as_affine(pixels), zero, zero, (0, 0)))


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate anticlockwise by ``degrees`` (N,) about the image centre, fill 0 (v2 ``rotate``:
    the angle taken mod 360, the matrix of -angle; its rot90 shortcut for multiples of 90
    gives the same pixels on square images, checked in tests/data/test_trivial_augment.py)."""
    angle = torch.remainder(_as_affine(degrees), 360.0)
    zero = torch.zeros_like(angle)
    return _affine_nearest(x, _inverse_affine(-angle, zero, zero, zero, zero, (0.0, 0.0)))


def adjust_sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image sharpness factors (N,): blend with a 3x3 smoothed copy (PIL's SMOOTH kernel,
    centre 5/13), the one-pixel border kept, clamped to [0, 1]."""
    n, c, h, w = x.shape
    if h <= 2 or w <= 2:
        return x
    kernel = torch.full((3, 3), 1.0 / 13.0, dtype=x.dtype, device=x.device)
    kernel.view(-1)[4:5].fill_(5.0 / 13.0)  # a fill on the device, not a copy from the host
    blurred = F.conv2d(x, kernel.expand(c, 1, 3, 3), groups=c)
    out = x.clone()
    view = out[..., 1:-1, 1:-1]
    view.add_((1.0 - factor)[:, None, None, None] * (blurred - view))
    return out.clamp_(0.0, 1.0)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep ``bits`` (N,) bits per channel: v2's float rule floor(x * 2^bits) / 2^bits (its
    uint8 rule masks the low bits of x * 255; see tests/data/test_trivial_augment.py)."""
    levels = torch.pow(2.0, bits.to(x.dtype))[:, None, None, None]
    return torch.minimum(x.mul(levels).floor_(), levels - 1).clamp_(min=0.0).mul_(1.0 / levels)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert (1 - x) every value at or above ``threshold`` (N,)."""
    return torch.where(x >= threshold[:, None, None, None], 1.0 - x, x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel to [0, 1] (a constant channel is left as it is)."""
    minimum = x.amin(dim=(-2, -1), keepdim=True)
    maximum = x.amax(dim=(-2, -1), keepdim=True)
    flat = maximum == minimum
    minimum = torch.where(flat, 0.0, minimum)
    scale = torch.where(flat, 1.0, maximum - minimum)
    return (x - minimum).div_(scale).clamp_(0.0, 1.0)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each channel: v2's ``equalize`` (PIL's look-up table), which works
    on uint8, so the float image is quantised as v2 does (x * 255.999, truncated) and the
    result is a multiple of 1/255."""
    n, c, h, w = x.shape
    image = x.mul(255 + 1.0 - 1e-3).to(torch.uint8)  # v2 to_dtype(uint8, scale=True)
    flat = image.flatten(start_dim=-2).to(torch.long)
    hist = flat.new_zeros((n, c, 256), dtype=torch.int32)
    hist.scatter_add_(dim=-1, index=flat, src=hist.new_ones(1).expand_as(flat))
    cum = hist.cumsum(dim=-1)
    top = cum.argmax(dim=-1, keepdim=True)  # the image's largest value
    step = (flat.shape[-1] - hist.gather(dim=-1, index=top)).div(255, rounding_mode="floor")
    valid = step.ne(0).unsqueeze(-1)  # (N, C, 1, 1): a single-valued channel stays as it is
    lut = (cum[..., :-1] + step // 2).div(step.clamp(min=1), rounding_mode="floor").clamp(0, 255)
    lut = torch.cat([lut.new_zeros(n, c, 1), lut], dim=-1).to(torch.uint8)
    equalized = lut.gather(dim=-1, index=flat).view_as(image)
    return torch.where(valid, equalized, image).to(x.dtype).mul_(1.0 / 255)


TRIVIAL_AUGMENT_BINS = 31  # torchvision's num_magnitude_bins


def _linspace(low: float, high: float):
    return lambda bins, device: torch.linspace(low, high, bins, device=device)


# op -> (magnitudes of the bins, or None; signed), torchvision v2 TrivialAugmentWide's
# _AUGMENTATION_SPACE on 32x32 images. Translations are absolute (32 px), not image fractions.
TRIVIAL_AUGMENT_SPACE = {
    "identity": (None, False),
    "shear_x": (_linspace(0.0, 0.99), True),
    "shear_y": (_linspace(0.0, 0.99), True),
    "translate_x": (_linspace(0.0, 32.0), True),
    "translate_y": (_linspace(0.0, 32.0), True),
    "rotate": (_linspace(0.0, 135.0), True),
    "brightness": (_linspace(0.0, 0.99), True),
    "color": (_linspace(0.0, 0.99), True),
    "contrast": (_linspace(0.0, 0.99), True),
    "sharpness": (_linspace(0.0, 0.99), True),
    "posterize": (
        lambda bins, device: (8 - torch.arange(bins, device=device) / ((bins - 1) / 6)).round(),
        False,
    ),
    "solarize": (_linspace(1.0, 0.0), False),
    "autocontrast": (None, False),
    "equalize": (None, False),
}
TRIVIAL_AUGMENT_OPS = tuple(TRIVIAL_AUGMENT_SPACE)


def trivial_augment_op(op: str, x: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Operation ``op`` of TrivialAugmentWide on ``x`` with per-image signed magnitudes (N,),
    as torchvision v2's ``_apply_image_or_video_transform`` maps a magnitude to an argument."""
    if op == "identity":
        return x
    if op == "shear_x":
        return shear_x(x, magnitude)
    if op == "shear_y":
        return shear_y(x, magnitude)
    if op == "translate_x":
        return translate_x(x, magnitude.trunc())  # int(magnitude)
    if op == "translate_y":
        return translate_y(x, magnitude.trunc())
    if op == "rotate":
        return rotate(x, magnitude)
    if op == "brightness":
        return adjust_brightness(x, 1.0 + magnitude)
    if op == "color":
        return adjust_saturation(x, 1.0 + magnitude)
    if op == "contrast":
        return adjust_contrast(x, 1.0 + magnitude)
    if op == "sharpness":
        return adjust_sharpness(x, 1.0 + magnitude)
    if op == "posterize":
        return posterize(x, magnitude.trunc())  # int(magnitude)
    if op == "solarize":
        return solarize(x, 1.0 * magnitude)  # bound of a float image x magnitude
    if op == "autocontrast":
        return autocontrast(x)
    if op == "equalize":
        return equalize(x)
    raise ValueError(f"unknown TrivialAugment operation {op!r}")


def trivial_augment_plan(
    n: int, gen: torch.Generator, device, bins: int = TRIVIAL_AUGMENT_BINS
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Which images get which operation and magnitude: ``[(op, indices, magnitudes), ...]``.

    Each image's operation is uniform over the 14 and independent of the others; drawn as
    the number of images per operation (multinomial, on the host from ``gen``'s seed, so the
    subsets' sizes are known without a device read) and a random permutation of the images
    (on ``gen``'s device) cut into subsets of those sizes. Bins and signs are drawn per image.
    """
    k = len(TRIVIAL_AUGMENT_OPS)
    counts = _host_rng(gen, stream=17).multinomial(n, [1 / k] * k)
    perm = torch.rand(n, generator=gen, device=device).argsort()
    bin_index = torch.randint(0, bins, (n,), generator=gen, device=device)
    negative = torch.rand(n, generator=gen, device=device) <= 0.5  # v2: rand() <= 0.5 flips
    plan, start = [], 0
    for op, count in zip(TRIVIAL_AUGMENT_OPS, counts.tolist(), strict=True):
        idx = perm[start : start + count]
        start += count
        table, signed = TRIVIAL_AUGMENT_SPACE[op]
        if table is None:
            magnitude = torch.zeros(count, device=device)
        else:
            magnitude = table(bins, device)[bin_index[idx]]
            if signed:
                magnitude = torch.where(negative[idx], -magnitude, magnitude)
        plan.append((op, idx, magnitude))
    return plan


def trivial_augment(
    x: torch.Tensor, gen: torch.Generator, bins: int = TRIVIAL_AUGMENT_BINS
) -> torch.Tensor:
    """TrivialAugmentWide on every image: each operation applied once, to its own subset of
    the batch (``trivial_augment_plan``), gathered and scattered back by index."""
    out = x.clone()
    for op, idx, magnitude in trivial_augment_plan(x.shape[0], gen, x.device, bins):
        if op != "identity" and len(idx):
            out.index_copy_(0, idx, trivial_augment_op(op, x.index_select(0, idx), magnitude))
    return out


# --------------------------------------------------------------------------- random erasing


def erase_boxes(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: torch.Tensor,
    width: torch.Tensor,
    value: float = 0.0,
) -> torch.Tensor:
    """Set a box per image (N,) to ``value``: rows top..top+height-1, columns left..left+width-1
    (an image with height or width 0 is left as it is)."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_y = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # (N, H)
    in_x = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # (N, W)
    return x.masked_fill((in_y[:, :, None] & in_x[:, None, :])[:, None], value)


def random_erasing(
    x: torch.Tensor,
    p: float,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
) -> torch.Tensor:
    """RandomErasing (Zhong et al. 2020; torchvision v2's defaults) on each image with
    probability ``p``: a box of a uniform share ``scale`` of the area and a log-uniform aspect
    ``ratio`` (height / width), rounded to pixels, at a uniform position, set to ``value``.

    torchvision tries up to 10 boxes per image until one fits inside it (else leaves the
    image); here the 10 tries are drawn at once for every image and the first that fits is
    taken, which is the same distribution. ``value`` 0 on the [0, 1] image is black, as
    ``cutout`` (torchvision's reference scripts erase after normalising, where 0 is the mean).
    """
    n, _, h, w = x.shape
    device, tries = x.device, 10
    erase = torch.rand(n, generator=gen, device=device) < p  # v2: rand(1) >= p leaves it
    area = h * w * _uniform(n * tries, scale[0], scale[1], gen, device).view(n, tries)
    log_ratio = _uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), gen, device)
    aspect = torch.exp(log_ratio).view(n, tries)
    box_h = torch.sqrt(area * aspect).round()  # round half to even, as Python's round
    box_w = torch.sqrt(area / aspect).round()
    fits = (box_h < h) & (box_w < w)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first try that fits
    erase &= fits.any(dim=1)
    box_h = box_h.gather(1, first).squeeze(1)
    box_w = box_w.gather(1, first).squeeze(1)
    top = (torch.rand(n, generator=gen, device=device) * (h - box_h + 1)).floor()
    left = (torch.rand(n, generator=gen, device=device) * (w - box_w + 1)).floor()
    zero = torch.zeros_like(box_h)
    box_h, box_w = torch.where(erase, box_h, zero), torch.where(erase, box_w, zero)
    return erase_boxes(x, top, left, box_h, box_w, value)


# --------------------------------------------------------------------------- mixup and cutmix
# Zhang et al. 2018 (mixup) and Yun et al. 2019 (CutMix), as torchvision v2's MixUp / CutMix:
# one weight per batch from Beta(alpha, alpha); each image is mixed with the one before it in
# the batch (the batch is a random sample, so that is a random partner), and so is its one-hot
# target. With both on, one of the two per batch with probability 1/2 (timm's Mixup switch).


def sample_beta(alpha: float, gen: torch.Generator, device) -> torch.Tensor:
    """One draw of Beta(alpha, alpha) as a 0-dim float32 tensor on ``device`` (through
    torch's Dirichlet sampler, which takes a generator: torch.distributions does not)."""
    concentration = torch.full((1, 2), float(alpha), device=device)
    return torch._sample_dirichlet(concentration, generator=gen)[0, 0]


def mixup(
    x: torch.Tensor, targets: torch.Tensor, lam: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp with weight ``lam``: lam * image + (1 - lam) * the image before it, targets alike."""
    return x * lam + x.roll(1, 0) * (1 - lam), targets * lam + targets.roll(1, 0) * (1 - lam)


def cutmix_box(
    lam: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, h: int, w: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CutMix's box for weight ``lam`` centred at (cy, cx), as v2 CutMix: half-sides
    int(0.5 sqrt(1 - lam) x side), clipped to the image. Returns (y1, y2, x1, x2, lam
    corrected to the share of the image outside the box), 0-dim tensors."""
    dtype = _affine_dtype(lam.device)
    r = 0.5 * torch.sqrt(1.0 - lam.to(dtype))
    half_w, half_h = (r * w).floor(), (r * h).floor()  # int() of a non-negative number
    x1 = (cx.to(dtype) - half_w).clamp(min=0)
    y1 = (cy.to(dtype) - half_h).clamp(min=0)
    x2 = (cx.to(dtype) + half_w).clamp(max=w)
    y2 = (cy.to(dtype) + half_h).clamp(max=h)
    corrected = 1.0 - (x2 - x1) * (y2 - y1) / (w * h)
    return y1, y2, x1, x2, corrected.float()


def _outside_box(y1, y2, x1, x2, h: int, w: int, device) -> torch.Tensor:
    """(H, W) float: 1 outside the box, 0 inside."""
    rows = torch.arange(h, device=device)[:, None]
    cols = torch.arange(w, device=device)[None, :]
    inside = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    return (~inside).float()


def cutmix(
    x: torch.Tensor, targets: torch.Tensor, lam: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix with weight ``lam`` and box centre (cy, cx): the box is pasted from the image
    before each one, and the targets mixed by the share of the image outside the box."""
    h, w = x.shape[-2:]
    y1, y2, x1, x2, corrected = cutmix_box(lam, cy, cx, h, w)
    keep = _outside_box(y1, y2, x1, x2, h, w, x.device)
    mixed = x * keep + x.roll(1, 0) * (1 - keep)  # exactly x or its neighbour: keep is 0 or 1
    return mixed, targets * corrected + targets.roll(1, 0) * (1 - corrected)


def mix_batch(
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    gen: torch.Generator,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixed images, soft targets (N, num_classes)) by mixup, cutmix, or one of the two per
    batch with probability 1/2 when both alphas are on. The choice is made on the device (a
    blend weight that is the constant lam for mixup and the box mask for cutmix), so nothing
    is read back; both weights are drawn either way, so the draws do not depend on it."""
    if not (mixup_alpha or cutmix_alpha):
        raise ValueError("mix_batch needs mixup_alpha or cutmix_alpha > 0")
    # one-hot by scatter: F.one_hot checks the labels' range with host reads on the CPU
    targets = torch.zeros(len(labels), num_classes, dtype=x.dtype, device=x.device)
    targets.scatter_(1, labels[:, None], 1.0)
    device, (h, w) = x.device, x.shape[-2:]
    if mixup_alpha:
        lam_mix = sample_beta(mixup_alpha, gen, device)
        if not cutmix_alpha:
            return mixup(x, targets, lam_mix)
    if cutmix_alpha:
        lam_cut = sample_beta(cutmix_alpha, gen, device)
        cx = torch.randint(0, w, (), generator=gen, device=device)  # v2: r_x first, then r_y
        cy = torch.randint(0, h, (), generator=gen, device=device)
        if not mixup_alpha:
            return cutmix(x, targets, lam_cut, cy, cx)
    use_cutmix = torch.rand((), generator=gen, device=device) < 0.5
    y1, y2, x1, x2, corrected = cutmix_box(lam_cut, cy, cx, h, w)
    keep = torch.where(use_cutmix, _outside_box(y1, y2, x1, x2, h, w, device), lam_mix)
    lam = torch.where(use_cutmix, corrected, lam_mix)
    mixed = x * keep + x.roll(1, 0) * (1 - keep)
    return mixed, targets * lam + targets.roll(1, 0) * (1 - lam)


# --------------------------------------------------------------------------- a recipe's augmentation


def augment_batch(
    x: torch.Tensor, cfg, gen: torch.Generator, flips: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply a recipe's AugmentConfig: flip, translate, TrivialAugment, colour jitter, cutout,
    random erasing, in that order (torchvision's reference order: crop and flip, then the
    automatic augmentation, erasing last). An option that is off draws nothing from ``gen``,
    so a recipe without the newer options gets exactly the batches it got before them.
    Under ``flip_alternate`` the flip is not drawn: ``flips`` says which images to mirror
    (``batches.alternating_flips`` of the batch's indices and epoch).
    Mixup / cutmix need the labels: ``mix_batch``, after this."""
    if cfg.flip and cfg.flip_alternate:
        if flips is None:
            raise ValueError("augment.flip_alternate: pass the batch's alternating_flips")
        x = flip_where(x, flips)
    elif cfg.flip:
        x = flip_lr(x, gen)
    if cfg.translate:
        x = random_translate(x, cfg.translate, gen, cfg.pad_mode)
    if cfg.trivial_augment:
        x = trivial_augment(x, gen)
    if cfg.brightness or cfg.contrast or cfg.saturation:
        x = color_jitter(x, gen, cfg.brightness, cfg.contrast, cfg.saturation)
    if cfg.cutout:
        x = cutout(x, cfg.cutout, gen)
    if cfg.random_erasing:
        x = random_erasing(x, cfg.random_erasing, gen)
    return x


# --------------------------------------------------------------------------- progressive resizing
# Training early at a lower resolution and finishing at the native one (fast.ai's progressive
# resizing; FFCV's resolution schedule): a convolution's cost falls with the pixel count, so
# 16x16 images cost about a quarter of 32x32 ones. Deterministic: it draws nothing.


def resolution_at(fraction: float, sizes: list[int], milestones: list[float]) -> int | None:
    """The training image size at ``fraction`` of training: ``sizes[k]`` from
    ``milestones[k-1]`` on, ``sizes[0]`` before the first; None without a schedule."""
    if not sizes:
        return None
    k = sum(1 for m in milestones if fraction >= m)
    return sizes[k]


def resize_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """``x`` (N, C, H, W) resized to ``size`` x ``size`` (bilinear, antialiased when shrinking,
    as torchvision's Resize on tensors); unchanged when ``size`` is None or already its size."""
    if size is None or x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
