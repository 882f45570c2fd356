"""A study's figures: accuracy per step with error bars, every run's curves in one grid
(the seed report's figures 9-18 in one figure), and a strip + box plot of test accuracies.

Drawn in :mod:`cifarlab.plotting`'s style and written with :func:`cifarlab.plotting.save`
(to a temporary file, then renamed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cifarlab.plotting import figure, save
from cifarlab.rundir import RunDir
from cifarlab.studies.spec import StudySpec
from cifarlab.studies.studydir import ACCURACIES_STRIP, ACCURACY_BY_STEP, CURVES_GRID, StudyDir


def plot_study(
    study_dir: str | Path,
    study: StudySpec,
    summary: dict[str, Any],
    results: dict[str, dict[int, dict[str, Any]]],
) -> list[Path]:
    """accuracy_by_step.png, curves_grid.png and accuracies_strip.png in ``study_dir``."""
    where = StudyDir(study_dir)
    return [
        plot_accuracy_by_step(summary, where.file(ACCURACY_BY_STEP)),
        plot_curves_grid(study_dir, study, results, where.file(CURVES_GRID)),
        plot_accuracies_strip(summary, where.file(ACCURACIES_STRIP)),
    ]


def plot_accuracy_by_step(summary: dict[str, Any], path: str | Path) -> Path:
    """Mean test accuracy per step with its 95% t interval, each seed as a dot, the report's
    single-run numbers as crosses where the ladder gives them, and beside each the mean final
    training accuracy with its interval where the runs recorded it (the depth ladder's
    question is about training error)."""
    rows = summary["rows"]
    fig, ax = figure(max(5.0, 1.3 * len(rows) + 2), 4.5)
    xs = range(len(rows))
    for x, r in zip(xs, rows, strict=True):
        if r["n"] == 0:
            continue
        if r["ci95"]:
            lo, hi = r["ci95"]
            ax.errorbar(
                x, r["mean"], yerr=[[r["mean"] - lo], [hi - r["mean"]]], fmt="o", color="C0",
                capsize=5, markersize=7, label="mean, 95% CI" if x == 0 else None,
            )  # fmt: skip
        else:
            ax.plot(x, r["mean"], "o", color="C0", markersize=7)
        offsets = _offsets(len(r["values"]))
        ax.plot(
            [x + o for o in offsets], r["values"], ".", color="C0", alpha=0.45,
            label="seeds" if x == 0 else None,
        )  # fmt: skip
        if r["reference"] is not None:
            ax.plot(x, r["reference"], "x", color="C3", markersize=9, mew=2,
                    label="report (one run)" if x == 0 else None)  # fmt: skip
    _plot_training(ax, rows)
    means = [r["mean"] for r in rows if r["mean"] is not None]
    if len(means) > 1:
        ax.plot([x for x, r in zip(xs, rows, strict=True) if r["mean"] is not None], means,
                "-", color="C0", alpha=0.3)  # fmt: skip
    ax.set_xticks(list(xs), [r["step"] for r in rows], rotation=20, ha="right")
    training = any((r.get("train_accuracy") or {}).get("n") for r in rows)
    ax.set_ylabel("accuracy (%)" if training else "test accuracy (%)")
    n = max((r["n"] for r in rows), default=0)
    what = "test and final training accuracy" if training else "test accuracy"
    ax.set_title(f"{summary['name']}: {what} by step (n = {n} seeds)")
    ax.grid(alpha=0.3, axis="y")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    return save(fig, path)


def _plot_training(ax: Any, rows: list[dict[str, Any]]) -> None:
    """Each step's mean final training accuracy (the running mean over the last evaluation
    interval's batches) as a square just right of its test point, with its 95% interval."""
    first = True
    for x, r in enumerate(rows):
        block = r.get("train_accuracy") or {}
        if not block.get("n"):
            continue
        mean, ci = block["mean"], block.get("ci95")
        yerr = [[mean - ci[0]], [ci[1] - mean]] if ci else None
        ax.errorbar(
            x + 0.3, mean, yerr=yerr, fmt="s", color="C1", capsize=4, markersize=6,
            label="final training accuracy, 95% CI" if first else None,
        )  # fmt: skip
        first = False


def _offsets(n: int, width: float = 0.25) -> list[float]:
    """Evenly spread horizontal offsets (deterministic jitter) for n dots."""
    if n <= 1:
        return [0.0] * n
    return [-width / 2 + width * i / (n - 1) for i in range(n)]


def plot_curves_grid(
    study_dir: str | Path,
    study: StudySpec,
    results: dict[str, dict[int, dict[str, Any]]],
    path: str | Path,
) -> Path:
    """One panel per run (rows: steps, columns: seeds; a one-step study wraps its seeds),
    each with train and validation accuracy against the step, titled with the test accuracy."""
    where = StudyDir(study_dir)
    cells = [(step.name, seed) for step in study.steps for seed in study.seeds]
    if len(study.steps) == 1:
        ncols = min(len(study.seeds), 5)
        nrows = math.ceil(len(study.seeds) / ncols)
    else:
        ncols, nrows = len(study.seeds), len(study.steps)
    fig, axes = figure(
        3.0 * ncols + 0.5, 2.4 * nrows + 0.6, nrows, ncols, sharey=True, squeeze=False
    )
    for ax in axes.flat[len(cells) :]:
        ax.axis("off")
    for ax, (step, seed) in zip(axes.flat, cells, strict=False):
        hist_path = RunDir(where.run(step, seed)).history_path
        metrics = results.get(step, {}).get(seed)
        if metrics is None or not hist_path.is_file():
            ax.text(0.5, 0.5, "not finished", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{step} · seed {seed}", fontsize=8)
            continue
        h = json.loads(hist_path.read_text(encoding="utf-8"))
        for key, label in (("train_acc", "train"), ("val_acc", "validation")):
            pts = [(s, a * 100) for s, a in zip(h["step"], h[key], strict=True) if a is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=label, linewidth=1.2)
        ax.set_title(
            f"{step} · seed {seed}: test {metrics['test_accuracy'] * 100:.2f}%", fontsize=8
        )
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("% accuracy", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("step", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper right", fontsize=8)
    fig.suptitle(f"{study.name}: train/validation accuracy of every run", fontsize=10)
    return save(fig, path)


def plot_accuracies_strip(summary: dict[str, Any], path: str | Path) -> Path:
    """Box plot of each step's test accuracies with every seed drawn over it as a dot."""
    rows = summary["rows"]
    fig, ax = figure(max(5.0, 1.3 * len(rows) + 2), 4.5)
    data = [r["values"] for r in rows]
    positions = list(range(1, len(rows) + 1))
    boxed = [(p, v) for p, v in zip(positions, data, strict=True) if len(v) >= 2]
    if boxed:
        ax.boxplot(
            [v for _, v in boxed], positions=[p for p, _ in boxed], widths=0.5,
            showfliers=False, medianprops={"color": "C1"},
        )  # fmt: skip
    for p, vals in zip(positions, data, strict=True):
        offsets = _offsets(len(vals), width=0.3)
        ax.plot([p + o for o in offsets], vals, "o", color="C0", alpha=0.7, markersize=5)
    ax.set_xticks(positions, [r["step"] for r in rows], rotation=20, ha="right")
    ax.set_xlim(0.4, len(rows) + 0.6)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{summary['name']}: test accuracy of every seed")
    ax.grid(alpha=0.3, axis="y")
    return save(fig, path)
