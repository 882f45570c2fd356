"""The report's comparison of models: every given run and study step set against what it
costs (parameters, training and run time, throughput), as a table and a chart
(:func:`cifarlab.report.charts.comparison_chart`)."""

from __future__ import annotations

from typing import Any

from cifarlab.report.charts import comparison_chart
from cifarlab.report.document import Block, Figure, Paragraph, Section, Table
from cifarlab.report.formatting import Names, duration, number, percent
from cifarlab.report.inputs import RunInput, StudyInput
from cifarlab.studies.stats import mean


def _mean_given(metrics: list[dict[str, Any]], key: str) -> float | None:
    """The mean of ``key`` over the metrics that give it (a truthy value); None if none do."""
    values = [m[key] for m in metrics if m.get(key)]
    return mean(values) if values else None


def comparison_points(runs: list[RunInput], studies: list[StudyInput]) -> list[dict[str, Any]]:
    """One point per given run and per study step (the summary's mean over its seeds)."""
    points = []
    for r in runs:
        m = r.metrics or {}
        if r.accuracy is None:
            continue
        points.append(
            {
                "label": r.label,
                "model": m.get("model"),
                "accuracy": r.accuracy,
                "std": None,
                "n": 1,
                "train_time_s": m.get("train_time_s"),
                "wall_time_s": m.get("wall_time_s"),
                "parameters": m.get("parameters"),
                "images_per_s": m.get("images_per_s"),
                "device": (m.get("provenance") or {}).get("device"),
            }
        )
    for study in studies:
        for row in study.rows():
            step = row["step"]
            done = [r.metrics for r in study.runs.get(step, []) if r.accuracy is not None]
            points.append(
                {
                    "label": f"{study.name}/{step}" if len(studies) > 1 or runs else step,
                    "model": done[0].get("model"),
                    "accuracy": row["mean"],
                    "std": row["std"],
                    "n": row["n"],
                    "train_time_s": _mean_given(done, "train_time_s"),
                    "wall_time_s": _mean_given(done, "wall_time_s"),
                    "parameters": done[0].get("parameters"),
                    "images_per_s": _mean_given(done, "images_per_s"),
                    "device": (done[0].get("provenance") or {}).get("device"),
                }
            )
    return points


def comparison_section(
    runs: list[RunInput], studies: list[StudyInput], names: Names
) -> Section | None:
    """The comparison of two or more points (comparison_points); None for fewer."""
    points = comparison_points(runs, studies)
    if len(points) < 2:
        return None
    rows = [
        [
            p["label"],
            str(p["model"] or "—"),
            number(p["parameters"]),
            percent(p["accuracy"]) + (f" ± {p['std']:.2f}" if p["std"] is not None else ""),
            str(p["n"]),
            duration(p["train_time_s"]),
            duration(p["wall_time_s"]),
            number(p["images_per_s"]),
            str(p["device"] or "—"),
        ]
        for p in points
    ]
    best = max(points, key=lambda p: p["accuracy"])
    text = (
        f"Highest test accuracy: {best['label']} ({best['model']}, {percent(best['accuracy'])}, "
        f"{number(best['parameters'])} parameters, {duration(best['train_time_s'])} of training)."
    )
    timed = [p for p in points if p["train_time_s"]]
    if timed:
        close = [p for p in timed if p["accuracy"] >= best["accuracy"] - 1.0]
        fastest = min(close or timed, key=lambda p: p["train_time_s"])
        if fastest is not best:
            text += (
                f" Fastest within one point of it: {fastest['label']} "
                f"({percent(fastest['accuracy'])} in {duration(fastest['train_time_s'])})."
            )
    blocks: list[Block] = [
        Paragraph(
            "The seed report closed by asking whether residual networks beat plain ConvNets; "
            "here every model in this report is set against what it costs. " + text
        ),
        Table(
            [
                "run",
                "model",
                "parameters",
                "test accuracy",
                "n",
                "training time",
                "run time",
                "images/s",
                "device",
            ],
            rows,
            caption=(
                "Models compared (studies: mean over seeds ± std). Training time counts the "
                "training steps; run time the whole run: data loading, initialisation, "
                "training, evaluations, test-time augmentation and the run's files (of the "
                "last start, for a resumed run)"
            ),
            numeric=[False, False, True, True, True, True, True, True, False],
        ),
        Figure(
            comparison_chart(points),
            names("comparison"),
            "Test accuracy against run time (left: the whole run where every point has it, "
            "else training time) and parameters (right)",
        ),
    ]
    return Section("comparison", "Comparison of models", blocks)
