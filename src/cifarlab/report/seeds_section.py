"""The report's seed-variance section: for each seed study (``cifarlab seeds``), how far test
accuracy moves with the seed alone: the summary (mean ± std, 95% interval, range), one row
per seed, and every seed's curves and accuracy in one chart
(:func:`cifarlab.report.charts.seed_chart`). Not corruption robustness, which is
:mod:`cifarlab.report.corruptions_section`'s."""

from __future__ import annotations

from typing import Any

from cifarlab.report.charts import seed_chart
from cifarlab.report.document import Block, Figure, Heading, Paragraph, Section, Table
from cifarlab.report.formatting import Names, duration, interval, percent
from cifarlab.report.inputs import RunInput, StudyInput


def seeds_section(studies: list[StudyInput], names: Names) -> Section | None:
    """Each seed study's steps: summary, table and chart; None without a seed study."""
    blocks: list[Block] = []
    for study in (s for s in studies if s.kind == "seeds"):
        summary = {r["step"]: r for r in study.rows()}
        for step in study.step_names():
            runs = study.runs.get(step, [])
            row = summary.get(step)
            if not runs and not row:
                continue
            title = study.name if len(study.runs) <= 1 else f"{study.name}: {step}"
            blocks.append(Heading(title, level=3))
            if row:
                blocks.append(Paragraph(_seed_summary(row)))
            if runs:
                blocks += _seed_runs(study, step, runs, names)
    return Section("seeds", "Seed variance", blocks) if blocks else None


def _seed_summary(row: dict[str, Any]) -> str:
    """One sentence: how many seeds, mean ± std, 95% CI and range of a summary row."""
    if row["std"] is None:
        return f"Test accuracy {row['mean']:.2f}%."
    n, planned = row["n"], row["n_expected"]
    seeds = (
        f"{n} of {planned} planned seeds (the study is not finished: rerun its command to "
        f"train the rest)"
        if planned > n
        else f"{n} seeds"
    )
    return (
        f"{seeds}: test accuracy {row['mean']:.2f}% ± {row['std']:.2f} (std)"
        + (f", 95% CI {interval(row['ci95'])}" if row["ci95"] else "")
        + f", range {row['min']:.2f} to {row['max']:.2f}."
    )


def _seed_runs(study: StudyInput, step: str, runs: list[RunInput], names: Names) -> list[Block]:
    """A table of one seed study step's runs, and their curves and accuracies as a figure."""
    rows = []
    for r in runs:
        m = r.metrics or {}
        rows.append(
            [
                str(m.get("seed", r.path.name)),
                percent(r.accuracy),
                percent(m["val_accuracy"] * 100) if m.get("val_accuracy") is not None else "—",
                duration(m.get("train_time_s")),
                str(r.path.relative_to(study.path)),
            ]
        )
    blocks: list[Block] = [
        Table(
            ["seed", "test accuracy", "final validation accuracy", "training time", "run"],
            rows,
            caption="One run per seed, identical recipe otherwise",
            numeric=[True, True, True, True, False],
        )
    ]
    label = {id(r): f"seed {(r.metrics or {}).get('seed', r.path.name)}" for r in runs}
    histories = {label[id(r)]: r.history for r in runs if r.history}
    accs = {label[id(r)]: r.accuracy for r in runs if r.accuracy is not None}
    if histories or accs:
        blocks.append(
            Figure(
                seed_chart(histories, accs),
                names(f"{study.name}-{step}-seeds"),
                "Validation accuracy of every seed (left); test accuracy per seed "
                "with mean and ±1 std band (right)",
            )
        )
    return blocks
