"""Look at the data: counts per split and class, example images, class histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cifarlab.data.readers import LabelledImages
from cifarlab.paths import output_dir
from cifarlab.plotting import figure, save

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


def draw_figures(data: LabelledImages) -> dict[str, Any]:
    """For train and test, a 2×5 grid of one image per class (``<split>_examples``) and a
    per-class count histogram (``<split>_class_counts``): matplotlib figures by file stem,
    drawn in :mod:`cifarlab.plotting`'s style."""
    out = {}
    for split in SPLITS:
        images, labels = _split(data, split)

        fig, axes = figure(10, 4.6, 2, 5)
        for c, (ax, name) in enumerate(zip(axes.flat, data.classes, strict=True)):
            ax.set_axis_off()
            where = np.flatnonzero(labels == c)
            if len(where):  # the first image of the class: deterministic
                ax.imshow(images[where[0]], interpolation="nearest")
            ax.set_title(name)
        fig.suptitle(f"CIFAR-10 {split}: one image per class")
        out[f"{split}_examples"] = fig

        counts = np.bincount(labels, minlength=len(data.classes))
        fig, ax = figure(8, 4)
        bars = ax.bar(range(len(counts)), counts, color="tab:blue")
        ax.bar_label(bars, labels=[f"{n:,}" for n in counts], fontsize=8)
        ax.set_xticks(range(len(counts)), data.classes, rotation=45, ha="right")
        ax.set_ylabel("images")
        ax.set_title(f"CIFAR-10 {split}: {len(labels):,} images by class")
        out[f"{split}_class_counts"] = fig
    return out


def write_figures(data: LabelledImages, out_dir: str | Path) -> list[Path]:
    """:func:`draw_figures` as PNGs in ``out_dir``; return their paths.

    Each figure is written atomically: a failure (full disk, read-only) raises one line
    (OutputError / PathError) and leaves no partial or empty PNG.
    """
    out_dir = output_dir(out_dir, "figure folder", create=True)
    return [save(fig, out_dir / f"{stem}.png") for stem, fig in draw_figures(data).items()]
