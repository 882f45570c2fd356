"""The report's training section: for each run shown in detail, its final metrics, its loss
and accuracy curves, per-class accuracy and confusion matrix: the run's own PNGs, else drawn
in memory from its history and metrics (:mod:`cifarlab.figures`)."""

from __future__ import annotations

from pathlib import Path

from cifarlab.figures import draw_confusion, draw_curves
from cifarlab.plotting import render
from cifarlab.report.document import Block, Figure, Heading, Row, Section, Table
from cifarlab.report.formatting import Names, duration, number, percent, slug
from cifarlab.report.inputs import RunInput
from cifarlab.rundir import ACCURACY_FIGURE, CONFUSION_FIGURE, LOSS_FIGURE, RUN_FIGURES


def _run_summary(run: RunInput) -> list[tuple[str, str]]:
    m = run.metrics or {}
    prov = m.get("provenance") or {}
    rec = run.recipe or {}
    pairs = [
        ("run directory", str(run.path)),
        ("recipe", str(m.get("recipe") or rec.get("name") or "—")),
        ("model", f"{m.get('model', '—')} ({number(m.get('parameters'))} parameters)"),
        ("seed", str(m.get("seed", rec.get("seed", "—")))),
    ]
    if m:
        pairs += [
            ("test accuracy", percent(run.accuracy) + f" on {number(m.get('test_count'))} images"),
        ]
        if m.get("test_accuracy_tta") is not None:
            pairs.append(
                (f"test accuracy ({m.get('tta')} TTA)", percent(m["test_accuracy_tta"] * 100))
            )
        pairs += [
            ("test loss", f"{m['test_loss']:.4f}" if m.get("test_loss") is not None else "—"),
            (
                "final validation accuracy",
                percent(m["val_accuracy"] * 100) if m.get("val_accuracy") is not None else "—",
            ),
            ("training", f"{number(m.get('steps'))} steps, {m.get('epochs', 0):.2f} epochs"),
            ("training time", duration(m.get("train_time_s"))),
            ("throughput", f"{number(m.get('images_per_s'))} images/s"),
            ("device", f"{prov.get('device', '—')} ({prov.get('device_name', '—')})"),
            (
                "software",
                f"cifarlab {prov.get('cifarlab', '—')}, torch {prov.get('torch', '—')}, "
                f"git {prov.get('git_commit', '—')}",
            ),
        ]
    else:
        pairs.append(("status", "unfinished: no metrics.json yet; curves from the checkpoint"))
    return pairs


FIGURE_CAPTIONS = {
    LOSS_FIGURE: "Train (running) and validation loss",
    ACCURACY_FIGURE: "Train (running) and validation accuracy",
    CONFUSION_FIGURE: "Confusion matrix on the test set (rows: true class)",
}


def _run_figures(run: RunInput, names: Names) -> dict[str, Figure]:
    """The run's figures by file name (rundir.RUN_FIGURES): its own PNGs, else drawn from its
    history and metrics."""
    got = {name: png for name in RUN_FIGURES if (png := run.figure(name)) is not None}
    missing = [name for name in RUN_FIGURES if name not in got]
    curves = LOSS_FIGURE in missing or ACCURACY_FIGURE in missing
    if curves and run.history and run.history.get("step"):
        for name, fig in draw_curves(run.history, title=run.label).items():
            got.setdefault(name, render(fig))
    m = run.metrics or {}
    if CONFUSION_FIGURE in missing and m.get("confusion") and m.get("classes"):
        got[CONFUSION_FIGURE] = render(draw_confusion(m["confusion"], m["classes"]))
    return {
        name: Figure(got[name], names(f"{run.label}-{Path(name).stem}"), FIGURE_CAPTIONS[name])
        for name in RUN_FIGURES
        if name in got
    }


def training_section(featured: list[RunInput], names: Names) -> Section | None:
    """A summary table of the featured runs (when several), then each one in detail."""
    if not featured:
        return None
    blocks: list[Block] = []
    if len(featured) > 1:
        rows = []
        for r in featured:
            m = r.metrics or {}
            rows.append(
                [
                    r.label,
                    str(m.get("model", "—")),
                    str(m.get("seed", "—")),
                    percent(r.accuracy),
                    duration(m.get("train_time_s")),
                    str((m.get("provenance") or {}).get("device", "—")),
                ]
            )
        blocks.append(
            Table(
                ["run", "model", "seed", "test accuracy", "training time", "device"],
                rows,
                caption="Runs shown in detail below",
                numeric=[False, False, True, True, True, False],
            )
        )
    for run in featured:
        blocks.append(Heading(run.label, level=3, id=f"run-{slug(run.label)}"))
        pairs = _run_summary(run)
        blocks.append(Table(["", ""], [[k, v] for k, v in pairs], caption="Final metrics"))
        figs = _run_figures(run, names)
        curves = [figs[n] for n in (LOSS_FIGURE, ACCURACY_FIGURE) if n in figs]
        if curves:
            blocks.append(Row(curves))
        m = run.metrics or {}
        per_class = m.get("per_class_accuracy")
        confusion = figs.get(CONFUSION_FIGURE)
        if per_class:
            counts = m.get("confusion")
            rows = []
            for i, (cls, acc) in enumerate(per_class.items()):
                total = sum(counts[i]) if counts and i < len(counts) else None
                right = counts[i][i] if counts and i < len(counts) else None
                rows.append([cls, percent(acc * 100, 1), f"{right} / {total}" if total else "—"])
            table = Table(
                ["class", "test accuracy", "correct / images"],
                rows,
                caption="Per-class test accuracy",
                numeric=[False, True, True],
            )
            blocks.append(Row([table, confusion]) if confusion else table)
        elif confusion:
            blocks.append(confusion)
    return Section("training", "Training", blocks)
