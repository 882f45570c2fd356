"""Look at the data: counts per split and class, example images, class histograms."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from cifarlab.data.readers import LabelledImages
from cifarlab.paths import output_dir
from cifarlab.plotting import figure, plain, save

SPLITS = ("train", "test")


def _split(data: LabelledImages, split: str) -> tuple[np.ndarray, np.ndarray]:
    return getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")


def overview(data: LabelledImages) -> dict[str, Any]:
    """Counts per split and per class, image shape and dtype, and the source line."""
    out: dict[str, Any] = {
        "source": data.source,
        "is_sample": data.is_sample,
        "classes": list(data.classes),
        "image_shape": tuple(int(s) for s in data.train_images.shape[1:]),
        "dtype": str(data.train_images.dtype),
    }
    for split in SPLITS:
        _, labels = _split(data, split)
        counts = np.bincount(labels, minlength=len(data.classes))
        out[split] = {
            "images": int(len(labels)),
            "per_class": {name: int(n) for name, n in zip(data.classes, counts, strict=True)},
        }
    return out


TITLES = {  # how figures name a LabelledImages.dataset; any other name is shown as it is
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "cifar100-coarse": "CIFAR-100 (20 superclasses)",
    "folder": "Image folders",
}
NAMED_BARS = 20  # up to this many classes the count histogram has vertical bars


def dataset_title(data: LabelledImages) -> str:
    """The dataset's name in a figure title: "CIFAR-10", "CIFAR-100", ..."""
    return TITLES.get(data.dataset, data.dataset)


def wrap_name(name: str, width: int = 18) -> str:
    """A class name over lines of about ``width`` characters, broken after an underscore,
    hyphen or space (``large_man-made_`` / ``outdoor_things``); a name that fits is kept."""
    lines, line = [], ""
    for part in re.findall(r"[^_\- ]*[_\- ]?", name):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line] if line else lines)


def draw_examples(data: LabelledImages, split: str):
    """One image per class (the first of each: deterministic), titled by class name.

    Ten classes or fewer: a 2×5 grid as before; more: a grid about as wide as high (10×10
    for 100 classes) with the names small and wrapped over lines."""
    images, labels = _split(data, split)
    n = len(data.classes)
    if n <= 10:
        fig, axes = figure(10, 4.6, 2, 5)
        size = None
    else:
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        fig, axes = figure(1.25 * cols, 1.45 * rows + 0.5, rows, cols)
        size = 7.5
    for c, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if c >= n:
            continue
        where = np.flatnonzero(labels == c)
        if len(where):  # the first image of the class: deterministic
            ax.imshow(images[where[0]], interpolation="nearest")
        name = data.classes[c]
        if size is None:
            ax.set_title(name)
        else:
            ax.set_title(plain(wrap_name(name)), fontsize=size, linespacing=0.95)
    fig.suptitle(f"{dataset_title(data)} {split} set: one image per class")
    return fig


def draw_class_counts(data: LabelledImages, split: str):
    """Images per class. Up to NAMED_BARS classes: vertical bars in class order, names
    slanted below; more: horizontal bars, one row per class in class order (the first at the
    top), each named and counted, the figure as tall as the classes need."""
    _, labels = _split(data, split)
    n = len(data.classes)
    counts = np.bincount(labels, minlength=n)
    title = f"{dataset_title(data)} {split} set: {len(labels):,} images by class"
    if n <= NAMED_BARS:
        fig, ax = figure(8, 4)
        bars = ax.bar(range(len(counts)), counts, color="tab:blue")
        ax.bar_label(bars, labels=[f"{k:,}" for k in counts], fontsize=8)
        ax.set_xticks(range(len(counts)), data.classes, rotation=45, ha="right")
        ax.set_ylabel("images")
        ax.set_title(title)
        return fig
    fig, ax = figure(8, 0.16 * n + 1.2)
    bars = ax.barh(range(n), counts, height=0.75, color="tab:blue")
    ax.bar_label(bars, labels=[f"{k:,}" for k in counts], fontsize=6, padding=2)
    ax.set_yticks(range(n), [plain(f"{c}  {name}") for c, name in enumerate(data.classes)])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylim(n - 0.5, -0.5)  # the first class at the top
    ax.set_xlim(0, max(int(counts.max()), 1) * 1.12)
    ax.set_xlabel("images")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return fig


def draw_figures(data: LabelledImages) -> dict[str, Any]:
    """For train and test, one image per class (``<split>_examples``, :func:`draw_examples`)
    and a per-class count histogram (``<split>_class_counts``, :func:`draw_class_counts`):
    matplotlib figures by file stem, drawn in :mod:`cifarlab.plotting`'s style, readable
    for 10 or 100 classes."""
    out = {}
    for split in SPLITS:
        out[f"{split}_examples"] = draw_examples(data, split)
        out[f"{split}_class_counts"] = draw_class_counts(data, split)
    return out


def write_figures(data: LabelledImages, out_dir: str | Path) -> list[Path]:
    """:func:`draw_figures` as PNGs in ``out_dir``; return their paths.

    Each figure is written atomically: a failure (full disk, read-only) raises one line
    (OutputError / PathError) and leaves no partial or empty PNG.
    """
    out_dir = output_dir(out_dir, "figure folder", create=True)
    return [save(fig, out_dir / f"{stem}.png") for stem, fig in draw_figures(data).items()]
