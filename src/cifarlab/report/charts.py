"""Figures made for the report document: ablation ladder, seed study, model comparison.

Each function draws in :mod:`cifarlab.plotting`'s style and returns the PNG as bytes
(:func:`cifarlab.plotting.render`), so the report can inline it without touching the run
directories it reads. Labels come from run directories, so they are drawn as plain text
(:func:`cifarlab.plotting.plain`), never as matplotlib mathtext.
"""

from __future__ import annotations

import math
from typing import Any

from cifarlab.plotting import figure, plain, render
from cifarlab.studies import stats


def ablation_chart(rows: list[dict[str, Any]], reference: dict[str, float] | None = None) -> bytes:
    """Mean test accuracy per step (bars, 95% CI whiskers), each seed as a dot, and the
    seed report's own number per step as a diamond when ``reference`` is given.

    rows: ``{"step", "mean", "ci95": [lo, hi] | None, "values": [...]}`` in percent.
    """
    fig, ax = figure(8, 4.5)
    xs = list(range(len(rows)))
    means = [r["mean"] for r in rows]
    lo = [r["mean"] - r["ci95"][0] if _has_ci(r) else 0.0 for r in rows]
    hi = [r["ci95"][1] - r["mean"] if _has_ci(r) else 0.0 for r in rows]
    ax.bar(xs, means, color="tab:blue", alpha=0.55, label="ours: mean")
    ax.errorbar(xs, means, yerr=[lo, hi], fmt="none", ecolor="black", capsize=4, label="95% CI")
    for x, r in zip(xs, rows, strict=True):
        vals = r.get("values") or []
        ax.plot([x] * len(vals), vals, "o", color="navy", markersize=4)
    if reference:
        ref = [
            (x, reference[r["step"]])
            for x, r in zip(xs, rows, strict=True)
            if r["step"] in reference
        ]
        if ref:
            ax.plot(
                [x for x, _ in ref],
                [v for _, v in ref],
                "D",
                color="tab:red",
                markersize=7,
                label="seed report",
            )
    every = [v for r in rows for v in (r.get("values") or [r["mean"]])]
    every += list(reference.values()) if reference else []
    low = min(every) if every else 0.0
    ax.set_ylim(max(0.0, math.floor(low - 5)), None)
    ax.set_xticks(xs, [plain(r["step"]) for r in rows], rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Ablation ladder: test accuracy per step")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return render(fig)


def _has_ci(row: dict[str, Any]) -> bool:
    ci = row.get("ci95")
    return bool(ci) and all(v is not None and math.isfinite(v) for v in ci)


def seed_chart(
    histories: dict[str, dict[str, list[Any]]], accuracies: dict[str, float], title: str = ""
) -> bytes:
    """Left: validation accuracy against the step for every seed (the report's figures 9-18
    on one plot). Right: test accuracy per seed, with the mean and ±1 std band."""
    fig, (left, right) = figure(11, 4.2, 1, 2)
    for label, hist in histories.items():
        steps, val = hist.get("step", []), hist.get("val_acc", [])
        pts = [(s, v * 100) for s, v in zip(steps, val, strict=False) if v is not None]
        if pts:
            left.plot(
                [s for s, _ in pts], [v for _, v in pts], "-", linewidth=1.2, label=plain(label)
            )
    left.set_xlabel("step")
    left.set_ylabel("validation accuracy (%)")
    left.set_title("Validation accuracy, every seed")
    left.grid(alpha=0.3)
    if 0 < len(histories) <= 10:
        left.legend(fontsize=7)
    labels = list(accuracies)
    vals = [accuracies[k] for k in labels]
    if vals:
        mean = stats.mean(vals)
        std = stats.sample_std(vals) or 0.0
        right.axhspan(mean - std, mean + std, color="tab:blue", alpha=0.12, label="mean ± std")
        right.axhline(mean, color="tab:blue", linewidth=1.5, label=f"mean {mean:.2f}%")
        right.plot(range(len(vals)), vals, "o", color="tab:orange", markersize=7, label="seed")
        right.set_xticks(
            range(len(vals)), [plain(k) for k in labels], rotation=30, ha="right", fontsize=8
        )
        right.legend(fontsize=8)
    right.set_ylabel("test accuracy (%)")
    right.set_title("Test accuracy per seed")
    right.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(plain(title))
    return render(fig)


def _short(v: float) -> str:
    """1500 -> "1.5k", 2e6 -> "2M"."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def comparison_chart(points: list[dict[str, Any]]) -> bytes:
    """Test accuracy against training time and against parameters, one labelled point per model.

    points: ``{"label", "accuracy" (percent), "train_time_s", "parameters"}``, optionally
    ``"wall_time_s"`` (the whole run): the time axis is that when every timed point has it.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    timed = [p for p in points if p.get("train_time_s") or p.get("wall_time_s")]
    whole = bool(timed) and all(p.get("wall_time_s") for p in timed)
    time_key, time_label = (
        ("wall_time_s", "run time, whole run (s, log scale)")
        if whole
        else ("train_time_s", "training time (s, log scale)")
    )
    fig, (left, right) = figure(11, 4.2, 1, 2)
    for ax, key, xlabel in (
        (left, time_key, time_label),
        (right, "parameters", "parameters (log scale)"),
    ):
        pts = [p for p in points if p.get(key) and p.get("accuracy") is not None]
        for i, p in enumerate(pts):
            ax.plot(p[key], p["accuracy"], "o", markersize=8, color=f"C{i % 10}")
            ax.annotate(
                plain(p["label"]),
                (p[key], p["accuracy"]),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=8,
            )
        if pts:
            ax.set_xscale("log")
            # Labels at 1, 2, 5 x 10^k only, written short: minor labels overlapped.
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
            ax.xaxis.set_minor_formatter(NullFormatter())
            xs = [p[key] for p in pts]
            ax.set_xlim(min(xs) / 1.6, max(xs) * 2.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
    left.set_title("Accuracy against run time" if whole else "Accuracy against training time")
    right.set_title("Accuracy against model size")
    return render(fig)
