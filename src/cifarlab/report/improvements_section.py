"""The report's improvements section: each ablation study's ladder, step by step (mean ± std,
95% interval and the difference from the previous step, the seed report's number beside
ours where the ladder gives it), as a table and a chart
(:func:`cifarlab.report.charts.ablation_chart`); and where the runs recorded it, each step's
final training accuracy and loss with the same differences and whether each is beyond seed
noise (He et al.'s depth question is about training error: the degradation problem is one of
optimisation)."""

from __future__ import annotations

import json
from typing import Any

from cifarlab.report.charts import ablation_chart
from cifarlab.report.document import Block, Figure, Heading, Paragraph, Section, Table
from cifarlab.report.formatting import Names, interval, percent
from cifarlab.report.inputs import StudyInput
from cifarlab.studies.summary import has_training, verdict


def improvements_section(studies: list[StudyInput], names: Names) -> Section | None:
    """A table and a chart per ablation study; None without one."""
    blocks: list[Block] = []
    for study in (s for s in studies if s.kind == "ablation"):
        rows = study.rows()
        if not rows:
            continue
        ref = study.references()
        changes = {s.name: s.changes for s in study.spec.steps}
        show_ref = any(r["step"] in ref for r in rows)
        leave_one_out = study.spec.mode == "leave-one-out"
        columns = [
            "step",
            "change" if not leave_one_out else "left out (value instead)",
            "n",
            "mean ± std",
            "95% CI",
            "Δ vs final (95% CI)" if leave_one_out else "Δ previous (95% CI)",
        ]
        if show_ref:
            columns.append("seed report")
        table_rows = []
        for r in rows:
            diff, dci = r["diff_prev"], r["diff_prev_ci95"]
            cells = [
                r["step"],
                _changes(changes.get(r["step"])),
                _n_of(r),
                f"{r['mean']:.2f} ± {r['std']:.2f}" if r["std"] is not None else f"{r['mean']:.2f}",
                interval(r["ci95"]),
                "—"
                if diff is None
                else f"{diff:+.2f}" + (f" ({interval(dci, signed=True)})" if dci else ""),
            ]
            if show_ref:
                cells.append(percent(ref.get(r["step"])))
            table_rows.append(cells)
        blocks.append(Heading(study.name, level=3))
        spec = study.spec
        desc = (
            f"Ladder {spec.ladder or '—'} on recipe {spec.recipe}, trained with seeds "
            f"{', '.join(map(str, spec.seeds))}; test accuracy in percent. "
            + (
                "Each row is the final recipe with one step's changes left out, compared with "
                "the final recipe."
                if leave_one_out
                else "Each step adds its changes to the step before it."
            )
        )
        if show_ref:
            desc += " The last column is the seed report's single-run number for the same step."
        blocks.append(Paragraph(desc))
        blocks.append(
            Table(
                columns,
                table_rows,
                caption=f"Ablation: {study.name}",
                numeric=[False, False, True, True, True, True, True],
            )
        )
        blocks.append(
            Figure(
                ablation_chart(rows, ref if show_ref else None),
                names(f"{study.name}-ablation"),
                "Mean test accuracy per step (bars), 95% CI, each seed (dots)"
                + (", the seed report's number (diamonds)" if show_ref else ""),
            )
        )
        blocks += _training_blocks(study.name, rows)
    return Section("improvements", "Improvements", blocks) if blocks else None


def _training_blocks(name: str, rows: list[dict[str, Any]]) -> list[Block]:
    """The final training accuracy (%) and loss per step, each with its difference from the
    compared step (Welch's 95% interval) and whether that is beyond seed noise; nothing when
    no row has them (a study summarised from metrics alone)."""
    if not has_training(rows):
        return []
    table_rows = []
    for r in rows:
        cells = [r["step"]]
        for key, digits in (("train_accuracy", 2), ("train_loss", 3)):
            block = r.get(key) or {"n": 0}
            if not block["n"]:
                cells += ["—", "—", "—"]
                continue
            std = f" ± {block['std']:.{digits}f}" if block["std"] is not None else ""
            diff, dci = block["diff_prev"], block["diff_prev_ci95"]
            cells += [
                f"{block['mean']:.{digits}f}{std}",
                "—"
                if diff is None
                else f"{diff:+.{digits}f}"
                + (f" ({interval(dci, signed=True, digits=digits)})" if dci else ""),
                verdict({"diff_ref": r["diff_ref"], **block}),
            ]
        table_rows.append(cells)
    return [
        Paragraph(
            f"{name}: the final training accuracy (%) and loss of each step's runs, the last "
            "evaluation point of each run's history (the running mean over the training "
            "batches since the point before, augmented images, as the run printed it), with "
            "the difference from the step before, Welch's 95% interval, and whether that "
            "interval excludes 0."
        ),
        Table(
            [
                "step",
                "train accuracy, mean ± std",
                "Δ previous (95% CI)",
                "beyond noise?",
                "train loss, mean ± std",
                "Δ previous (95% CI)",
                "beyond noise?",
            ],
            table_rows,
            caption=f"Training accuracy and loss: {name}",
            numeric=[False, True, True, False, True, True, False],
        ),
    ]


def _changes(changes: dict[str, Any] | None) -> str:
    if not changes:
        return "—"
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in changes.items())


def _n_of(row: dict[str, Any]) -> str:
    """The runs behind a row: "3", or "2 of 3" while some of the study's seeds are unfinished."""
    n, planned = row["n"], row["n_expected"]
    return f"{n} of {planned}" if planned > n else str(n)
