"""Figures of a run: loss and accuracy curves (report figures 5-8), confusion matrix,
reliability diagram, corruption robustness.

Used by training, ``cifarlab evaluate`` and the report. Each ``draw_*`` function returns a
matplotlib figure made by :mod:`cifarlab.plotting` (its style; the report renders it to
bytes in memory), each ``plot_*`` writes that figure to a file (:func:`cifarlab.plotting.save`:
atomically, never through a symlink).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifarlab.plotting import figure, plain, save
from cifarlab.rundir import ACCURACY_FIGURE, LOSS_FIGURE


def draw_curves(
    history: dict[str, list[Any]],
    title: str = "",
    marks: list[tuple[int, str]] | tuple = (),
) -> dict[str, Any]:
    """The loss and accuracy figures by file name (rundir.LOSS_FIGURE, ACCURACY_FIGURE): train
    (the running mean between points) and validation against the step; ``marks`` are
    (step, label) lines, e.g. where a resume changed the recipe (a run extended to more
    epochs)."""
    out = {}
    steps = history["step"]
    for key, ylabel, scale, name in (
        ("loss", "loss", 1.0, LOSS_FIGURE),
        ("acc", "% accuracy", 100.0, ACCURACY_FIGURE),
    ):
        fig, ax = figure(7, 4.5)
        for split, style in (("train", "-"), ("val", "-")):
            ys = history.get(f"{split}_{key}", [])
            if ys and any(y is not None for y in ys):
                ax.plot(
                    steps,
                    [None if y is None else y * scale for y in ys],
                    style,
                    label=f"{'train' if split == 'train' else 'validation'} {ylabel.split()[-1]}"
                    + (" (running)" if split == "train" else ""),
                )
        for k, (step, text) in enumerate(marks):
            ax.axvline(
                step, color="0.4", linestyle="--", linewidth=1, label=text if k < 3 else None
            )
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(
            f"{title} — train/validation {'losses' if key == 'loss' else 'accuracies'}".strip(" —")
        )
        ax.grid(alpha=0.3)
        ax.legend()
        out[name] = fig
    return out


def plot_curves(
    history: dict[str, list[Any]],
    loss_path: str | Path,
    accuracy_path: str | Path,
    title: str = "",
    marks: list[tuple[int, str]] | tuple = (),
) -> list[Path]:
    """The loss curves (:func:`draw_curves`) to ``loss_path`` and the accuracy curves to
    ``accuracy_path`` (a run's loss.png and accuracy.png, named by RunDir); their paths."""
    figs = draw_curves(history, title, marks)
    return [save(figs[LOSS_FIGURE], loss_path), save(figs[ACCURACY_FIGURE], accuracy_path)]


def draw_corruptions(results: dict[str, dict[str, Any]], title: str = ""):
    """Corruption robustness (cifarlab.robustness results, one per label) in two panels:
    left, each corruption's accuracy averaged over the severities, with each run's clean and
    mean corruption accuracy as vertical lines; right, accuracy against severity averaged
    over the corruptions, severity 0 being the clean test set."""
    labels = list(results)
    names = list(dict.fromkeys(n for r in results.values() for n in r["corruptions"]))
    fig, (left, right) = figure(
        12, max(4.5, 0.32 * len(names) + 1.5), 1, 2, gridspec_kw={"width_ratios": [3, 2]}
    )
    height = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        r, colour = results[label], f"C{k % 10}"
        shown = plain(label) if len(labels) > 1 else "mean over severities"
        ys = [
            i - 0.4 + height * (k + 0.5)
            for i, n in enumerate(names)
            if n in r["mean_by_corruption"]
        ]
        xs = [r["mean_by_corruption"][n] * 100 for n in names if n in r["mean_by_corruption"]]
        left.barh(ys, xs, height=height, color=colour, alpha=0.75, label=shown)
        left.axvline(r["clean_accuracy"] * 100, color=colour, linestyle="--", linewidth=1.2)
        left.axvline(r["mean_accuracy"] * 100, color=colour, linestyle=":", linewidth=1.5)
        sev = [0] + [int(s) for s in r["mean_by_severity"]]
        acc = [r["clean_accuracy"] * 100] + [v * 100 for v in r["mean_by_severity"].values()]
        right.plot(sev, acc, "o-", color=colour, label=plain(label))
    left.plot([], [], "k--", linewidth=1.2, label="clean accuracy")
    left.plot([], [], "k:", linewidth=1.5, label="mean corruption accuracy")
    left.set_yticks(range(len(names)), [plain(n) for n in names])
    left.invert_yaxis()
    left.set_xlabel("test accuracy (%)")
    left.set_title("Accuracy per corruption")
    left.grid(axis="x", alpha=0.3)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3, fontsize=8)
    right.set_xlabel("severity (0 = clean)")
    right.set_ylabel("test accuracy (%), mean over corruptions")
    right.set_xticks(range(0, 6))
    right.set_title("Accuracy against severity")
    right.grid(alpha=0.3)
    if len(labels) > 1:
        right.legend(fontsize=8)
    if title:
        fig.suptitle(plain(title))
    return fig


def plot_corruptions(results: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """:func:`draw_corruptions` as a PNG file at ``path``."""
    return save(draw_corruptions(results, title), path)


ANNOTATED_CLASSES = 20  # up to this many classes the matrix shows names and counts


def draw_confusion(
    confusion: list[list[int]],
    classes: list[str],
    pairs: list[dict[str, Any]] | tuple = (),
):
    """A confusion-matrix heat map (rows: true class, columns: predicted).

    Up to ``ANNOTATED_CLASSES`` classes: the counts in every cell and the class names on
    both axes. Beyond (CIFAR-100's 100): no numbers (10,000 of them cannot be read); each
    cell is the share of its true class's images, on a square-root colour scale so that the
    few percent a mistake takes stays visible beside the diagonal; the axes are class
    indices, every tenth labelled (the names are in the per-class table); and ``pairs``
    (cifarlab.inference.confused_pairs: ``{"true", "predicted", ...}`` by name), the most
    confused pairs, are circled and numbered in their order.
    """
    import numpy as np

    mat = np.asarray(confusion)
    n = len(classes)
    if n > ANNOTATED_CLASSES:
        return _draw_large_confusion(mat, classes, pairs)
    big = n > 10
    fig, ax = figure(10, 9) if big else figure(7, 6)
    im = ax.imshow(mat, cmap="Blues")
    ax.set_xticks(
        range(n), [plain(c) for c in classes] if big else classes, rotation=45, ha="right"
    )
    ax.set_yticks(range(n), [plain(c) for c in classes] if big else classes)
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
                fontsize=6 if big else 7,
                color="white" if mat[i, j] > thresh else "black",
            )
    fig.colorbar(im, ax=ax)
    return fig


def _draw_large_confusion(mat, classes: list[str], pairs) -> Any:
    """draw_confusion beyond ANNOTATED_CLASSES classes (its docstring says how)."""
    import numpy as np
    from matplotlib.colors import PowerNorm

    n = len(classes)
    totals = mat.sum(axis=1, keepdims=True)
    share = 100.0 * mat / np.maximum(totals, 1)
    fig, ax = figure(10, 8.6)
    im = ax.imshow(
        share, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=max(float(share.max()), 1e-9))
    )
    step = max(1, int(np.ceil(n / 10)))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.set_xticks(range(n), minor=True)
    ax.set_yticks(range(n), minor=True)
    ax.tick_params(which="minor", length=2)
    ax.set_xlabel(f"predicted class (index 0-{n - 1}; names in the per-class table)")
    ax.set_ylabel("true class (index)")
    index = {name: k for k, name in enumerate(classes)}
    marked = [
        (index[p["predicted"]], index[p["true"]])
        for p in pairs
        if p.get("true") in index and p.get("predicted") in index
    ]
    for rank, (x, y) in enumerate(marked, start=1):
        ax.plot(x, y, "o", markersize=9, markerfacecolor="none", markeredgecolor="tab:red")
        ax.annotate(
            str(rank),
            (x, y),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
            color="tab:red",
            fontweight="bold",
        )
    title = f"{n} classes: share of each true class (row) by predicted class"
    if marked:
        title += f"; circled: the {len(marked)} most confused pairs"
    ax.set_title(title, fontsize=10)
    bar = fig.colorbar(im, ax=ax, shrink=0.85)
    bar.set_label("share of the true class's images (%, square-root scale)")
    return fig


def plot_confusion(
    confusion: list[list[int]],
    classes: list[str],
    path: str | Path,
    pairs: list[dict[str, Any]] | tuple = (),
) -> Path:
    """:func:`draw_confusion` as a PNG file at ``path``."""
    return save(draw_confusion(confusion, classes, pairs), path)


def draw_reliability(
    reliability: dict[str, Any],
    *,
    ece: float | None = None,
    calibrated: dict[str, Any] | None = None,
    calibrated_ece: float | None = None,
    title: str = "",
):
    """A reliability diagram (cifarlab.calibration's bins): accuracy per confidence bin
    against the diagonal of perfect calibration, the gap shaded, and below it the share of
    images per bin. ``calibrated``: the same bins after temperature scaling, as a line."""
    n_bins = int(reliability["n_bins"])
    width = 1.0 / n_bins
    centres = [(b + 0.5) * width for b in range(n_bins)]
    fig, (ax, hist) = figure(6, 6.5, 2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    filled = [b for b in range(n_bins) if reliability["count"][b]]
    acc = [reliability["accuracy"][b] for b in filled]
    conf = [reliability["confidence"][b] for b in filled]
    label = "accuracy" + (f" (ECE {ece * 100:.2f}%)" if ece is not None else "")
    ax.bar([centres[b] for b in filled], acc, width=width, edgecolor="black", label=label)
    ax.bar(
        [centres[b] for b in filled],
        [c - a for a, c in zip(acc, conf, strict=True)],
        bottom=acc,
        width=width,
        color="tab:red",
        alpha=0.3,
        edgecolor="tab:red",
        label="gap to mean confidence",
    )
    pts = [
        (calibrated["confidence"][b], calibrated["accuracy"][b])
        for b in range(n_bins)
        if calibrated is not None and calibrated["count"][b]
    ]
    if pts:
        tlabel = "after temperature scaling" + (
            f" (ECE {calibrated_ece * 100:.2f}%)" if calibrated_ece is not None else ""
        )
        ax.plot(*zip(*pts, strict=True), "o-", color="tab:green", label=tlabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} — reliability".strip(" —"))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    total = max(sum(reliability["count"]), 1)
    hist.bar(centres, [c / total for c in reliability["count"]], width=width, edgecolor="black")
    hist.set_xlabel(f"confidence (top softmax probability, {n_bins} bins)")
    hist.set_ylabel("share of images")
    hist.grid(alpha=0.3)
    return fig


def plot_reliability(
    reliability: dict[str, Any],
    path: str | Path,
    *,
    ece: float | None = None,
    calibrated: dict[str, Any] | None = None,
    calibrated_ece: float | None = None,
    title: str = "",
) -> Path:
    """:func:`draw_reliability` as a PNG file at ``path``."""
    fig = draw_reliability(
        reliability, ece=ece, calibrated=calibrated, calibrated_ece=calibrated_ece, title=title
    )
    return save(fig, path)
