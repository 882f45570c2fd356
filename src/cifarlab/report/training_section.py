"""The report's training section: for each run shown in detail, its final metrics (top-1 and
top-5 accuracy), its loss and accuracy curves, per-class accuracy, the confusion matrix and
its most confused pairs: the run's own PNGs, else drawn in memory from its history and
metrics (:mod:`cifarlab.figures`), laid out to stay readable at 100 classes."""

from __future__ import annotations

from pathlib import Path

from cifarlab.figures import ANNOTATED_CLASSES, draw_confusion, draw_curves
from cifarlab.inference import confused_pairs
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
        k = m.get("top_k") or 5
        if m.get("test_top5_accuracy") is not None:
            pairs.append((f"test top-{k} accuracy", percent(m["test_top5_accuracy"] * 100)))
        if m.get("test_accuracy_tta") is not None:
            pairs.append(
                (f"test accuracy ({m.get('tta')} TTA)", percent(m["test_accuracy_tta"] * 100))
            )
        if m.get("test_top5_accuracy_tta") is not None:
            pairs.append(
                (
                    f"test top-{k} accuracy ({m.get('tta')} TTA)",
                    percent(m["test_top5_accuracy_tta"] * 100),
                )
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
    if len(m.get("classes") or ()) > ANNOTATED_CLASSES:
        # Redrawn: a run's own confusion.png from before the figure was made readable for
        # many classes holds 100 × 100 numbers and overprinted names.
        missing.append(CONFUSION_FIGURE)
        got.pop(CONFUSION_FIGURE, None)
    if CONFUSION_FIGURE in missing and m.get("confusion") and m.get("classes"):
        pairs = confused_pairs(m["confusion"], m["classes"])
        got[CONFUSION_FIGURE] = render(draw_confusion(m["confusion"], m["classes"], pairs))
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
                    percent(top5 * 100)
                    if (top5 := m.get("test_top5_accuracy")) is not None
                    else "—",
                    duration(m.get("train_time_s")),
                    str((m.get("provenance") or {}).get("device", "—")),
                ]
            )
        blocks.append(
            Table(
                ["run", "model", "seed", "test accuracy", "top-5", "training time", "device"],
                rows,
                caption="Runs shown in detail below",
                numeric=[False, False, True, True, True, True, False],
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
        blocks += _class_blocks(run.metrics or {}, figs.get(CONFUSION_FIGURE))
    return Section("training", "Training", blocks)


def _per_class_table(
    per_class: dict[str, float], counts: list[list[int]] | None, start: int, stop: int, many: bool
) -> Table:
    """Rows ``start:stop`` of the per-class table; with ``many`` classes, each row also
    gives the class's index (the confusion figure's axes)."""
    rows = []
    for i, (cls, acc) in enumerate(list(per_class.items())[start:stop], start=start):
        total = sum(counts[i]) if counts and i < len(counts) else None
        right = counts[i][i] if counts and i < len(counts) else None
        cells = [cls, percent(acc * 100, 1), f"{right} / {total}" if total else "—"]
        rows.append([str(i), *cells] if many else cells)
    columns = ["class", "test accuracy", "correct / images"]
    caption = "Per-class test accuracy"
    if many:
        caption += f", classes {start}-{stop - 1}"
    return Table(
        ["#", *columns] if many else columns,
        rows,
        caption=caption,
        numeric=[True, False, True, True] if many else [False, True, True],
    )


def _confused_table(pairs: list[dict]) -> Table:
    """The most confused pairs (cifarlab.inference.confused_pairs) as a table."""
    return Table(
        ["#", "true class", "predicted as", "images", "share of true class"],
        [
            [
                str(k),
                p["true"],
                p["predicted"],
                number(p["count"]),
                percent(p["share"] * 100, 1),
            ]
            for k, p in enumerate(pairs, start=1)
        ],
        caption=f"The {len(pairs)} most confused pairs on the test set (true → predicted)",
        numeric=[True, False, False, True, True],
    )


def _class_blocks(m: dict, confusion: Figure | None) -> list[Block]:
    """Per-class accuracy, the confusion matrix and its most confused pairs.

    Up to ANNOTATED_CLASSES classes: the per-class table beside the figure, the pairs below.
    More (CIFAR-100): the figure across the page (at half width its 100 rows would blur),
    the pairs (circled and numbered in it) below it, then the per-class table, indexed as the
    figure's axes, in two columns."""
    per_class = m.get("per_class_accuracy")
    counts = m.get("confusion")
    classes = m.get("classes") or list(per_class or [])
    pairs = []
    if counts and classes and len(counts) == len(classes):
        pairs = confused_pairs(counts, classes)
    blocks: list[Block] = []
    if not per_class:
        return [b for b in (confusion, _confused_table(pairs) if pairs else None) if b]
    n = len(per_class)
    if n <= ANNOTATED_CLASSES:
        table = _per_class_table(per_class, counts, 0, n, many=False)
        blocks.append(Row([table, confusion]) if confusion else table)
        if pairs:
            blocks.append(_confused_table(pairs))
        return blocks
    if confusion:
        blocks.append(confusion)
    if pairs:
        blocks.append(_confused_table(pairs))
    half = (n + 1) // 2
    blocks.append(
        Row(
            [
                _per_class_table(per_class, counts, 0, half, many=True),
                _per_class_table(per_class, counts, half, n, many=True),
            ]
        )
    )
    return blocks
