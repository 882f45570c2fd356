"""The 15 corruptions of CIFAR-10-C as pure functions over a whole batch.

One concern, the 15 corruptions, and so one file longer than most (the rule in
docs/ARCHITECTURE.md).

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019. Every constant per severity below is the CIFAR-10 one from the
authors' generation script, ``ImageNet-C/create_c/make_cifar_c.py`` in
github.com/hendrycks/robustness (commit ca36008); the ImageNet-C constants (and the
``imagecorruptions`` package, which uses them) are different and not used here. The code is
our own: batch tensor operations, written from the definitions, not a port of the script.

Each function takes a batch (N, 3, 32, 32), uint8 in [0, 255] or float in [0, 1], a severity
1-5 and an explicit ``torch.Generator`` (on the batch's device), and returns a new batch of the
same shape, dtype and range. The same batch, severity and generator state give the same
output. A uint8 batch is computed in float64 and stored as the script stored it,
``np.uint8(float)``, i.e. truncated, not rounded. Where the script went through 8 bits in
between (glass blur's first blur, ImageMagick's output, the snow layer's PNG, JPEG, PIL's
resize), so do we, for float input too. Random factors are drawn per image and, as in the
script, noise per pixel and channel.

Where we differ from the script, and why:

- **frost** blends each image with a crop of one of five frost photographs shipped with the
  authors' repository; we have no photographs offline, so each image gets a *generated*
  frost texture (:func:`frost_texture`): a pale blue layer of random needle-like crystals,
  plasma haze and grain whose brightness, tint, contrast and pixel-to-pixel variation were
  set to those measured on 32x32 crops of the photographs at the script's scale (mean RGB
  0.56, 0.65, 0.69; std within a crop 0.09; see FROST_RGB). The blend weights are the
  script's, and the mean change of an image is within 2 levels of the photographs' (dev test
  against ``imagecorruptions``), but the texture is not theirs: frost accuracies are not
  comparable digit for digit with published CIFAR-10-C frost numbers.
- **motion_blur** and the streaks of **snow** called ImageMagick's ``MotionBlurImage`` through
  Wand; we implement that kernel from its definition (ImageMagick ``effect.c``, as also
  re-implemented by ``imagecorruptions``): width 2*ceil(radius)+1 taps along the angle, one
  side only, tap i weighted exp(-i^2 / 2 sigma^2), offsets ceil(i*cos(a) - 0.5),
  ceil(i*sin(a) - 0.5), edge pixels repeated beyond the border, result rounded to 8 bits.
  ImageMagick's own filter may differ from this in sub-pixel details.
- **glass_blur** is what the script does, which is not quite what it says: its pixel "swap"
  (``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on numpy views) copies the neighbour into the
  pixel and leaves the neighbour as it was, and its offsets come from ``randint(-1, 1)``,
  whose upper bound is exclusive, so the neighbour is the one up, left, up-left or the pixel
  itself. Visited bottom-right to top-left, every source is still unvisited, so one
  iteration is a single gather; we do it that way, for the whole batch at once.
- **elastic_transform** uses ``grid_sample`` for OpenCV's ``warpAffine`` (bilinear,
  BORDER_REFLECT_101) and SciPy's ``map_coordinates`` (order 1, mode "reflect"); the sampling
  rules are the same, OpenCV's 1/32-pixel fixed-point coordinates are not reproduced.
- **pixelate** reproduces PIL's BOX resize (its weights and rounding) with matrices;
  **jpeg_compression** is PIL's JPEG itself, as in the script.

Everything else follows the script's arithmetic; the remaining differences are float
rounding (a pixel may land one level apart after truncation).

Severity is the authors' order, and with their constants three corruptions do not change an
image more at each step: glass_blur (its blur at severity 3 smooths away part of the
shuffle), frost (the image's weight falls faster than the frost's rises) and
elastic_transform (its affine jitter shrinks from 2.6 to 1 pixel as the elastic field
grows); tests/data/test_corruptions.py records the measured changes.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 32  # every constant below is CIFAR's, for 32x32 images
SEVERITIES = (1, 2, 3, 4, 5)

# The script's constants per severity 1..5 (make_cifar_c.py, one line per function).
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # std of N(0, c) added, on [0, 1]
SHOT_NOISE = (500, 250, 100, 75, 50)  # Poisson(x * c) / c: photons per unit intensity
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # share of values set to 0 or 1
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))  # disk radius, alias blur
GLASS_BLUR = (
    (0.05, 1, 1),
    (0.25, 1, 1),
    (0.4, 1, 1),
    (0.25, 1, 2),
    (0.4, 1, 2),
)  # sigma, delta, iterations
MOTION_BLUR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))  # ImageMagick radius, sigma (pixels)
# np.arange(1, 1.06, 0.01), ..., np.arange(1, 1.26, 0.01): float arange includes 1.06 and 1.11
# but not 1.16, 1.21, 1.26, so 7, 12, 16, 21 and 26 zoom factors 1 + k * ZOOM_STEP, where
# numpy's step is (1 + 0.01) - 1 = 0.010000000000000009; that last digit decides whether
# round(26 * 1.25) is 32 or 33, so it is kept.
ZOOM_BLUR = (7, 12, 16, 21, 26)
ZOOM_STEP = (1 + 0.01) - 1
SNOW = (  # loc, scale, zoom, threshold, blur radius, blur sigma, blend
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))  # image weight, frost weight
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))  # strength, plasma wibble decay
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # factor on the distance to each channel's mean
ELASTIC = tuple(  # (alpha, sigma, affine jitter) as multiples of the image size (IMSIZE = 32)
    (SIZE * a, SIZE * s, SIZE * j)
    for a, s, j in (
        (0, 0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    )
)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # BOX-resize to int(32 * c), then back
JPEG_QUALITY = (80, 65, 58, 50, 40)

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {}  # name -> function, in the paper's order
CATEGORIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}


# --------------------------------------------------------------------------- the wrapper


def _check(images: torch.Tensor, severity: int) -> None:
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, SIZE, SIZE):
        raise ValueError(f"expected a batch (N, 3, {SIZE}, {SIZE}), got {tuple(images.shape)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")


def _register(name: str, *, on_levels: bool = False):
    """Make ``core`` a corruption: check, convert, call, convert back. ``core`` sees floats in
    [0, 1] (float64 for a uint8 batch), or uint8 levels when ``on_levels`` (JPEG, PIL resize)."""

    def wrap(core):
        @functools.wraps(core)
        def corruption(
            images: torch.Tensor, severity: int, generator: torch.Generator
        ) -> torch.Tensor:
            _check(images, severity)
            is_uint8 = images.dtype == torch.uint8
            if on_levels:
                levels = images if is_uint8 else _to_levels(images)
                out = core(levels, severity, generator)
                return out if is_uint8 else (out.to(images.dtype) / 255)
            x = images.double() / 255 if is_uint8 else images.float()
            y = core(x, severity, generator).clamp(0, 1)
            if is_uint8:  # the script's np.uint8(float): truncation
                return (y * 255).floor_().to(torch.uint8)
            return y.to(images.dtype)

        CORRUPTIONS[name] = corruption
        return corruption

    return wrap


def corrupt(
    images: torch.Tensor, name: str, severity: int, generator: torch.Generator
) -> torch.Tensor:
    """``CORRUPTIONS[name](images, severity, generator)``."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name](images, severity, generator)


# --------------------------------------------------------------------------- helpers


def _to_levels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 levels, rounded (an 8-bit encoder's input)."""
    return (x.float().clamp(0, 1) * 255).round_().to(torch.uint8)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest of the 256 levels (an 8-bit PNG round trip)."""
    return (x.clamp(0, 1) * 255).round() / 255


def _truncate(x: torch.Tensor) -> torch.Tensor:
    """np.uint8(x * 255) / 255: the script's truncating conversion, mid-way."""
    return (x.clamp(0, 1) * 255).floor() / 255


def _rand(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) in ``like``'s dtype and device."""
    return torch.rand(shape, generator=gen, device=like.device, dtype=like.dtype)


def _uniform(shape, low: float, high: float, gen: torch.Generator, like) -> torch.Tensor:
    return _rand(shape, gen, like) * (high - low) + low


def _gaussian_taps(sigma: float, radius: int, like: torch.Tensor) -> torch.Tensor:
    """SciPy's gaussian_filter1d weights: exp(-x^2 / 2 sigma^2) on -radius..radius, normalised."""
    if radius == 0:
        return torch.ones(1, dtype=like.dtype, device=like.device)
    x = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _pad_index(n: int, radius: int, mode: str, device) -> torch.Tensor:
    """Source indices of a 1-D signal of length n padded by ``radius`` on each side.

    nearest: a a | a b c | c c (SciPy "nearest", OpenCV BORDER_REPLICATE);
    mirror: c b | a b c | b a (OpenCV BORDER_REFLECT_101);
    symmetric: b a | a b c | c b (SciPy "reflect").
    """
    i = torch.arange(-radius, n + radius, device=device)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "mirror":
        period = 2 * (n - 1)
        i = i.remainder(period)
        return torch.where(i >= n, period - i, i)
    period = 2 * n  # symmetric
    i = i.remainder(period)
    return torch.where(i >= n, period - 1 - i, i)


def _filter_separable(x: torch.Tensor, taps: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every image plane of (..., H, W) with ``taps`` along H, then along W."""
    r = (taps.numel() - 1) // 2
    if r == 0:
        return x
    h, w = x.shape[-2:]
    planes = x.reshape(-1, 1, h, w)
    planes = planes.index_select(2, _pad_index(h, r, mode, x.device))
    planes = F.conv2d(planes, taps.view(1, 1, -1, 1))
    planes = planes.index_select(3, _pad_index(w, r, mode, x.device))
    planes = F.conv2d(planes, taps.view(1, 1, 1, -1))
    return planes.reshape(x.shape)


def _filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every image plane with a square 2-D kernel (OpenCV filter2D)."""
    r = (kernel.shape[-1] - 1) // 2
    h, w = x.shape[-2:]
    planes = x.reshape(-1, 1, h, w)
    planes = planes.index_select(2, _pad_index(h, r, mode, x.device))
    planes = planes.index_select(3, _pad_index(w, r, mode, x.device))
    return F.conv2d(planes, kernel.view(1, 1, *kernel.shape)).reshape(x.shape)


def _clipped_zoom_matrix(zoom: float, like: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """(size, size) matrix Z with Z @ plane @ Z.T = the script's clipped_zoom of ``plane``.

    clipped_zoom crops the centre ceil(size / zoom) pixels, zooms them by ``zoom`` with
    scipy.ndimage.zoom (order 1: output length round(crop * zoom), output pixel o read at
    o * (crop - 1) / (out - 1)) and keeps the central ``size`` pixels. Linear in the
    plane, one axis at a time, so one matrix per axis.
    """
    crop = int(math.ceil(size / zoom))
    top = (size - crop) // 2
    out = int(round(crop * zoom))
    trim = (out - size) // 2
    scale = (crop - 1) / (out - 1) if out > 1 else 0.0
    src = top + (trim + torch.arange(size, dtype=torch.float64)) * scale
    lo = src.floor().clamp(max=size - 1)
    frac = src - lo
    lo = lo.long()
    hi = (lo + 1).clamp(max=size - 1)
    z = torch.zeros(size, size, dtype=torch.float64)
    rows = torch.arange(size)
    z.index_put_((rows, lo), 1 - frac, accumulate=True)
    z.index_put_((rows, hi), frac, accumulate=True)
    return z.to(device=like.device, dtype=like.dtype)


def _zoom(planes: torch.Tensor, zoom: float) -> torch.Tensor:
    z = _clipped_zoom_matrix(zoom, planes)
    return z @ planes @ z.T


def _motion_blur(x: torch.Tensor, radius: float, sigma: float, angle: torch.Tensor) -> torch.Tensor:
    """ImageMagick's MotionBlurImage on (N, C, H, W), ``angle`` (N,) in degrees, per image.

    Taps i = 0..2*ceil(radius) weighted exp(-i^2 / 2 sigma^2) (normalised), reading the pixel
    at (x + ceil(i cos a - 0.5), y + ceil(i sin a - 0.5)), edge pixels repeated: a streak on
    one side of each pixel, as ImageMagick draws it.
    """
    n, c, h, w = x.shape
    width = 2 * int(math.ceil(radius)) + 1
    i = torch.arange(width, dtype=torch.float64, device=x.device)
    taps = torch.exp(-(i**2) / (2 * sigma**2))
    taps = (taps / taps.sum()).to(x.dtype)
    rad = torch.deg2rad(angle.double())
    off_x = torch.ceil(i[None] * torch.cos(rad)[:, None] - 0.5).long()  # (N, width)
    off_y = torch.ceil(i[None] * torch.sin(rad)[:, None] - 0.5).long()
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for t in range(width):
        rows = (ys[None] + off_y[:, t : t + 1]).clamp(0, h - 1)  # (N, H)
        cols = (xs[None] + off_x[:, t : t + 1]).clamp(0, w - 1)  # (N, W)
        index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, -1)
        out += taps[t] * flat.gather(2, index)
    return out.reshape(n, c, h, w)


def plasma_fractal(
    n: int, wibbledecay: float, gen: torch.Generator, like: torch.Tensor, size: int = SIZE
) -> torch.Tensor:
    """(n, size, size) diamond-square height maps in [0, 1], one per image (the script's
    plasma_fractal, batched): each step sets the new points to the mean of their 4
    neighbours (torus-wrapped) plus uniform noise of amplitude wibble^2, wibble starting at
    100 and divided by ``wibbledecay`` each step."""
    m = torch.zeros(n, size, size, dtype=like.dtype, device=like.device)
    step = size
    wibble = 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        return total / 4 + wibble * _uniform(total.shape, -wibble, wibble, gen, total)

    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]  # squares: centre <- mean of the 4 corners
        total = corners + corners.roll(-1, dims=1)
        total = total + total.roll(-1, dims=2)
        m[:, half::step, half::step] = wibbled_mean(total)
        centres = m[:, half::step, half::step]  # diamonds: edge midpoints
        corners = m[:, 0::step, 0::step]
        total = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        m[:, 0::step, half::step] = wibbled_mean(total)
        total = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        m[:, half::step, 0::step] = wibbled_mean(total)
        step = half
        wibble /= wibbledecay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)


# The script's frost photographs, measured on 1,000 random 32x32 crops (200 from each of
# frost1-5, the ones it draws from) after its 0.2x resize, in [0, 1]: mean RGB 0.563, 0.647,
# 0.693; std of a crop's mean brightness 0.153 (the photographs differ: 0.45 to 0.80); std
# within a crop 0.088; mean |difference| between horizontal neighbours 0.075 (a rough texture).
FROST_RGB = (0.563, 0.647, 0.693)
FROST_LEVEL = (0.37, 0.90)  # uniform per image: mean 0.634 and std 0.153, as measured
FROST_STD = 0.088
FROST_MIX = (0.45, 0.45, 0.75)  # haze, needles, grain: sets the neighbour difference to ~0.075
FROST_NEEDLES = 24  # crystals per image


def frost_texture(
    n: int, gen: torch.Generator, like: torch.Tensor, size: int = SIZE
) -> torch.Tensor:
    """(n, 3, size, size) generated frost in [0, 1]: our stand-in for the script's photographs.

    A pale blue layer (FROST_RGB, scaled to a brightness drawn from FROST_LEVEL per image)
    whose variation (std FROST_STD) mixes a plasma haze, thin bright needles (FROST_NEEDLES
    random segments per image, 3-14 pixels long at random angles, with a Gaussian
    cross-section of 0.6 pixels) and per-pixel grain, in the proportions FROST_MIX. The
    constants reproduce the statistics measured on the photographs (above), not their look.
    """
    dev, dt = like.device, like.dtype
    haze = plasma_fractal(n, 2.0, gen, like, size)
    centre = _uniform((n, FROST_NEEDLES, 2), -2.0, size + 2.0, gen, like)
    theta = _uniform((n, FROST_NEEDLES), 0.0, math.pi, gen, like)
    half_len = _uniform((n, FROST_NEEDLES), 1.5, 7.0, gen, like)
    shine = _uniform((n, FROST_NEEDLES), 0.5, 1.0, gen, like)
    grain = torch.randn((n, size, size), generator=gen, device=dev, dtype=dt)
    level = _uniform((n,), *FROST_LEVEL, gen, like)
    axis = torch.arange(size, device=dev, dtype=dt)
    needles = torch.zeros(n, size, size, device=dev, dtype=dt)
    for k in range(FROST_NEEDLES):  # one needle of every image at a time: (n, size, size)
        dy = axis[None, :, None] - centre[:, k, 0, None, None]
        dx = axis[None, None, :] - centre[:, k, 1, None, None]
        cos, sin = torch.cos(theta[:, k, None, None]), torch.sin(theta[:, k, None, None])
        along = dx * cos + dy * sin
        across = -dx * sin + dy * cos
        beyond = (along.abs() - half_len[:, k, None, None]).clamp(min=0)
        needles += shine[:, k, None, None] * torch.exp(-(across**2 + beyond**2) / (2 * 0.6**2))

    def standard(t: torch.Tensor) -> torch.Tensor:
        t = t - t.mean(dim=(1, 2), keepdim=True)
        return t / t.std(dim=(1, 2), keepdim=True).clamp(min=1e-6)

    w_haze, w_needles, w_grain = FROST_MIX
    variation = standard(w_haze * standard(haze) + w_needles * standard(needles) + w_grain * grain)
    tint = torch.tensor(FROST_RGB, device=dev, dtype=dt)
    base = level[:, None, None, None] * (tint / tint.mean())[None, :, None, None]
    return (base + FROST_STD * variation[:, None]).clamp(0, 1)


# --------------------------------------------------------------------------- noise


@_register("gaussian_noise")
def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add N(0, c^2) to every value."""
    c = GAUSSIAN_NOISE[severity - 1]
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + c * noise


@_register("shot_noise")
def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Poisson(x * c) / c: photon noise at c photons per unit intensity."""
    c = SHOT_NOISE[severity - 1]
    return torch.poisson(x * c, generator=generator) / c


@_register("impulse_noise")
def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper (skimage random_noise 's&p'): each value with probability c becomes
    0 or 1, evenly."""
    c = IMPULSE_NOISE[severity - 1]
    flipped = _rand(x.shape, generator, x) <= c
    salted = _rand(x.shape, generator, x) <= 0.5
    return torch.where(flipped, salted.to(x.dtype), x)


# --------------------------------------------------------------------------- blur


def _disk_kernel(radius: float, alias_blur: float, like: torch.Tensor) -> torch.Tensor:
    """The script's disk(): the pixels within ``radius`` of the centre, normalised, then a 3x3
    Gaussian of sigma ``alias_blur`` (cv2.GaussianBlur). For radius <= 1.5 the disk fits in
    3x3, so the kernel is their 5x5 convolution."""
    r = torch.arange(-1, 2, dtype=torch.float64)
    disk = ((r[:, None] ** 2 + r[None, :] ** 2) <= radius**2).double()
    disk /= disk.sum()
    g = torch.exp(-(r**2) / (2 * alias_blur**2))
    g /= g.sum()
    kernel = F.conv2d(
        F.pad(disk.view(1, 1, 3, 3), (2, 2, 2, 2)), (g[:, None] * g[None, :]).view(1, 1, 3, 3)
    )[0, 0]
    return kernel.to(device=like.device, dtype=like.dtype)


@_register("defocus_blur")
def defocus_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Convolve with an anti-aliased disk (cv2.filter2D, BORDER_REFLECT_101)."""
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    return _filter2d(x, _disk_kernel(radius, alias_blur, x), "mirror")


@_register("glass_blur")
def glass_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur, 8-bit truncation, local pixel shuffling, Gaussian blur again.

    skimage's gaussian (SciPy, mode "nearest", truncate 4). The script's shuffle visits rows
    and columns 32 - delta down to delta + 1 and "swaps" each pixel with the one offset by
    randint(-delta, delta) in each axis; through numpy views that swap is a copy of the
    neighbour into the pixel, and the neighbour (up and/or left) has not been visited yet. So
    each iteration is one gather from the iteration's input, which is how we do it.
    """
    sigma, delta, iterations = GLASS_BLUR[severity - 1]
    taps = _gaussian_taps(sigma, int(4 * sigma + 0.5), x)
    x = _truncate(_filter_separable(x, taps, "nearest"))
    visited = SIZE - 2 * delta
    for _ in range(iterations):
        shift = torch.randint(
            -delta, delta, (2, x.shape[0], visited, visited), generator=generator, device=x.device
        )
        x = _glass_copy(x, shift, delta)
    return _filter_separable(x, taps, "nearest")


def _glass_copy(x: torch.Tensor, shift: torch.Tensor, delta: int) -> torch.Tensor:
    """One shuffle iteration: the pixel at (r, c), r and c in delta+1..32-delta, takes the
    value of (r + shift[0], c + shift[1]) (shift: (2, N, 32-2 delta, 32-2 delta))."""
    n, ch, h, w = x.shape
    inner = slice(delta + 1, SIZE - delta + 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1).repeat(n, 1, w)
    cols = torch.arange(w, device=x.device).view(1, 1, w).repeat(n, h, 1)
    rows[:, inner, inner] += shift[0]
    cols[:, inner, inner] += shift[1]
    index = (rows * w + cols).reshape(n, 1, h * w).expand(n, ch, -1)
    return x.reshape(n, ch, h * w).gather(2, index).reshape(n, ch, h, w)


@_register("motion_blur")
def motion_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """ImageMagick's motion blur (see :func:`_motion_blur`) at a uniform angle in [-45, 45)."""
    radius, sigma = MOTION_BLUR[severity - 1]
    angle = _uniform((x.shape[0],), -45.0, 45.0, generator, x)
    return _quantize(_motion_blur(x, radius, sigma, angle))


@_register("zoom_blur")
def zoom_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """The mean of the image and its centre zoomed by 1.00, 1.01, ... (clipped_zoom)."""
    total = x.clone()
    for k in range(ZOOM_BLUR[severity - 1]):
        total += _zoom(x, 1 + k * ZOOM_STEP)
    return total / (ZOOM_BLUR[severity - 1] + 1)


# --------------------------------------------------------------------------- weather


@_register("snow")
def snow(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian flakes, zoomed, thresholded and motion-blurred at [-135, -45) degrees, added
    twice (once turned 180 degrees) to the image lightened towards 1.5 gray + 0.5."""
    n = x.shape[0]
    noise = torch.randn((n, SIZE, SIZE), generator=generator, device=x.device, dtype=x.dtype)
    angle = _uniform((n,), -135.0, -45.0, generator, x)
    return _snow(x, noise, angle, severity)


def _snow(x: torch.Tensor, noise: torch.Tensor, angle: torch.Tensor, severity: int) -> torch.Tensor:
    """Snow with its random inputs given: ``noise`` (N, H, W) standard normal, ``angle`` (N,)."""
    loc, scale, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    flakes = _zoom(loc + scale * noise, zoom)
    flakes = torch.where(flakes < threshold, torch.zeros_like(flakes), flakes)
    flakes = _truncate(flakes)  # saved as an 8-bit PNG for ImageMagick
    flakes = _quantize(_motion_blur(flakes[:, None], radius, sigma, angle))
    gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]  # cv2 RGB2GRAY
    x = blend * x + (1 - blend) * torch.maximum(x, gray * 1.5 + 0.5)
    return x + flakes + flakes.flip(-1, -2)


@_register("frost")
def frost(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """a * image + b * frost, with our generated frost (:func:`frost_texture`)."""
    a, b = FROST[severity - 1]
    return a * x + b * frost_texture(x.shape[0], generator, x)


@_register("fog")
def fog(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add a plasma fractal, then rescale by max / (max + strength) (max over the image)."""
    strength, decay = FOG[severity - 1]
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    x = x + strength * plasma_fractal(x.shape[0], decay, generator, x)[:, None]
    return x * peak / (peak + strength)


@_register("brightness")
def brightness(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add c to HSV value, clipped at 1. With hue and saturation fixed, RGB is proportional
    to the value, so this is RGB * V' / V (gray V' where the pixel is black)."""
    c = BRIGHTNESS[severity - 1]
    value = x.amax(dim=1, keepdim=True)
    new = (value + c).clamp(max=1)
    return torch.where(value > 0, x * new / value.clamp(min=1e-12), new.expand_as(x))


# --------------------------------------------------------------------------- digital


@_register("contrast")
def contrast(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Scale each channel's distance to its own mean by c."""
    c = CONTRAST[severity - 1]
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * c + mean


@_register("elastic_transform")
def elastic_transform(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """A random affine warp (three points jittered by up to ``jitter`` pixels; warpAffine,
    bilinear, BORDER_REFLECT_101), then a smooth random displacement field (uniform noise in
    [-1, 1] blurred with sigma, SciPy mode "reflect", truncate 3, times alpha; sampled
    bilinearly, mode "reflect")."""
    alpha, sigma, jitter = ELASTIC[severity - 1]
    n = x.shape[0]
    moved = (
        ELASTIC_POINTS.to(x.device) + _uniform((n, 3, 2), -jitter, jitter, generator, x).double()
    )
    field = _uniform((2, n, SIZE, SIZE), -1.0, 1.0, generator, x) if alpha else None
    return _elastic(x, moved, field, alpha, sigma)


# The script's affine anchor points (cv2 order: x, y): centre 16 +- 32 // 3.
ELASTIC_POINTS = torch.tensor([[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]], dtype=torch.float64)


def _elastic(
    x: torch.Tensor, moved: torch.Tensor, field: torch.Tensor | None, alpha: float, sigma: float
) -> torch.Tensor:
    """The elastic transform with its random inputs given: ``moved`` (N, 3, 2), where the
    ELASTIC_POINTS go; ``field`` (2, N, H, W), the uniform noise of dx and dy."""
    n = x.shape[0]
    dt, dev = x.dtype, x.device
    src = ELASTIC_POINTS.to(dev)
    ones = torch.ones(3, 1, dtype=torch.float64, device=dev)
    forward = torch.linalg.solve(torch.cat([src, ones], 1), moved)  # (n, 3, 2): [x y 1] -> moved
    matrix = torch.zeros(n, 3, 3, dtype=torch.float64, device=dev)
    matrix[:, :2, :] = forward.transpose(1, 2)
    matrix[:, 2, 2] = 1
    inverse = torch.linalg.inv(matrix)  # warpAffine samples the source at M^-1 (x, y)
    yy, xx = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float64, device=dev),
        torch.arange(SIZE, dtype=torch.float64, device=dev),
        indexing="ij",
    )
    points = torch.stack([xx, yy, torch.ones_like(xx)], -1).reshape(-1, 3)  # (HW, 3)
    source = points @ inverse.transpose(1, 2)  # (n, HW, 3)
    # align_corners=True: -1 and 1 are the centres of the edge pixels; reflecting there is
    # BORDER_REFLECT_101.
    grid = (source[..., :2] / (SIZE - 1) * 2 - 1).reshape(n, SIZE, SIZE, 2).to(dt)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    if not alpha or field is None:
        return x
    taps = _gaussian_taps(sigma, int(3 * sigma + 0.5), x)
    dx, dy = (_filter_separable(field.to(dt), taps, "symmetric") * alpha).unbind(0)
    # align_corners=False: reflecting at the edges' outer borders is SciPy's "reflect".
    gx = (2 * (xx.to(dt) + dx) + 1) / SIZE - 1
    gy = (2 * (yy.to(dt) + dy) + 1) / SIZE - 1
    grid = torch.stack([gx, gy], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _box_resize_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) weights of PIL's BOX resampling along one axis (Pillow
    Resample.c precompute_coeffs: support 0.5 scaled by max(in/out, 1); an input pixel counts
    when (x - centre + 0.5) / scale lies in (-0.5, 0.5])."""
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = torch.zeros(size_out, size_in, dtype=torch.float64)
    for o in range(size_out):
        centre = (o + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), size_in)
        for i in range(lo, hi):
            t = (i - centre + 0.5) / filterscale
            m[o, i] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = m[o].sum()
        if total > 0:
            m[o] /= total
    return m


def _pil_box_resize(levels: torch.Tensor, size: int) -> torch.Tensor:
    """PIL's Image.resize((size, size), BOX) on uint8 (N, C, H, W): the horizontal pass,
    rounded to 8 bits, then the vertical one."""
    h, w = levels.shape[-2:]
    mh = _box_resize_matrix(h, size).to(levels.device)
    mw = _box_resize_matrix(w, size).to(levels.device)
    x = levels.double()
    x = (x @ mw.T + 0.5).floor().clamp(0, 255)  # PIL rounds half up
    x = (mh @ x + 0.5).floor().clamp(0, 255)
    return x.to(torch.uint8)


@_register("pixelate", on_levels=True)
def pixelate(levels: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """BOX-resize to int(32 * c) pixels and back (PIL)."""
    small = int(SIZE * PIXELATE[severity - 1])
    return _pil_box_resize(_pil_box_resize(levels, small), SIZE)


@_register("jpeg_compression", on_levels=True)
def jpeg_compression(
    levels: torch.Tensor, severity: int, generator: torch.Generator
) -> torch.Tensor:
    """Save as JPEG at the script's quality and read back, with PIL as the script did (its
    defaults: 4:2:0 chroma subsampling, no optimisation); one image at a time, the codec's
    unit."""
    from PIL import Image

    quality = JPEG_QUALITY[severity - 1]
    out = []
    for image in levels.permute(0, 2, 3, 1).cpu().numpy():
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    if not out:
        return levels.clone()
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(levels.device)
