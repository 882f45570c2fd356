"""Figures of a run: loss and accuracy curves (report figures 5-8), confusion matrix.

Used by training, ``cifarlab evaluate`` and the report. matplotlib is imported inside each
function with the Agg backend, so importing this module is cheap and never needs a display;
every figure is written atomically (cifarlab.rundir.save_figure), never through a symlink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifarlab.rundir import ACCURACY_FIGURE, LOSS_FIGURE, save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: dict[str, list[Any]], out_dir: str | Path, title: str = "") -> list[Path]:
    """loss.png and accuracy.png: train (running) and validation against the step."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    paths = []
    steps = history["step"]
    for key, ylabel, scale, name in (
        ("loss", "loss", 1.0, LOSS_FIGURE),
        ("acc", "% accuracy", 100.0, ACCURACY_FIGURE),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for split, style in (("train", "-"), ("val", "-")):
            ys = history.get(f"{split}_{key}", [])
            if ys and any(y is not None for y in ys):
                ax.plot(
                    steps,
                    [None if y is None else y * scale for y in ys],
                    style,
                    label=f"{'train' if split == 'train' else 'validation'} {ylabel.split()[-1]}",
                )
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(
            f"{title} — train/validation {'losses' if key == 'loss' else 'accuracies'}".strip(" —")
        )
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        try:
            paths.append(save_figure(fig, out_dir / name))
        finally:
            plt.close(fig)
    return paths


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path) -> Path:
    """A labelled confusion-matrix heat map (rows: true class, columns: predicted)."""
    import numpy as np

    plt = _pyplot()
    mat = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(mat, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    thresh = mat.max() / 2 if mat.size else 0
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(
                j,
                i,
                str(mat[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if mat[i, j] > thresh else "black",
            )
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    try:
        return save_figure(fig, Path(path))
    finally:
        plt.close(fig)
