"""The report's data section: where the runs' images came from, images per split and class,
and example images and class histograms (:func:`cifarlab.data.explore.draw_figures`) when
the dataset is found without a download (:func:`cifarlab.report.inputs.find_data`)."""

from __future__ import annotations

from cifarlab.data import explore
from cifarlab.data.cache import source_origin
from cifarlab.plotting import render
from cifarlab.report.document import Block, Figure, Paragraph, Row, Section, Table
from cifarlab.report.formatting import Names, number
from cifarlab.report.inputs import RunInput, find_data


def data_section(featured: list[RunInput], data_dir: str | None, names: Names) -> Section | None:
    """The data section of the featured runs' dataset; None when no run records its data."""
    metrics = [r.metrics for r in featured if r.metrics and r.metrics.get("data")]
    if not metrics:
        return None
    info = metrics[0]["data"]
    blocks: list[Block] = [Paragraph(f"Source: {info.get('source', 'unknown')}.")]
    # The same files read through another path spelling or cache entry are the same source.
    origins = [source_origin(str(m["data"].get("source", "unknown"))) for m in metrics]
    others = sorted(set(origins[1:]) - {origins[0]})
    if others:
        blocks.append(Paragraph("Other runs in this report used: " + "; ".join(others)))
    rows = [
        ["train", number(info.get("n_train")), "model updates"],
        ["validation", number(info.get("n_val")), "held out from the training set (stratified)"],
        ["test", number(info.get("n_test")), "the official test set; reported accuracy"],
    ]
    split_table = Table(
        ["split", "images", "used for"],
        rows,
        caption="Images per split",
        numeric=[False, True, False],
    )
    data, why = find_data(info, featured, data_dir)
    if data is None:
        blocks.append(split_table)
        blocks.append(Paragraph(f"Example images and class histograms left out: {why}.", note=True))
        return Section("data", "Data", blocks)
    desc = explore.overview(data)
    per_class = [
        [c, number(desc["train"]["per_class"][c]), number(desc["test"]["per_class"][c])]
        for c in desc["classes"]
    ]
    caption = (
        f"Images per class; each image {'×'.join(map(str, desc['image_shape']))} {desc['dtype']}"
    )
    if len(per_class) <= 20:
        blocks.append(Row([split_table, _class_table(per_class, caption)]))
    else:  # CIFAR-100: the split table, then the classes in two indexed halves
        half = (len(per_class) + 1) // 2
        blocks.append(split_table)
        parts = [(0, per_class[:half]), (half, per_class[half:])]
        blocks.append(
            Row(
                [
                    _class_table(
                        [[str(start + i), *row] for i, row in enumerate(rows)],
                        f"{caption}; classes {start}-{start + len(rows) - 1}",
                    )
                    for start, rows in parts
                ]
            )
        )
    pngs = {stem: render(fig) for stem, fig in explore.draw_figures(data).items()}
    for split in ("train", "test"):
        figures = [
            Figure(
                pngs[f"{split}_examples"],
                names(f"data-{split}-examples"),
                f"{split.capitalize()} set: one image per class",
            ),
            Figure(
                pngs[f"{split}_class_counts"],
                names(f"data-{split}-histogram"),
                f"{split.capitalize()} set: images per class",
            ),
        ]
        # Side by side for CIFAR-10; beyond 10 classes each needs the page's width.
        blocks += [Row(figures)] if len(desc["classes"]) <= 10 else figures
    return Section("data", "Data", blocks)


def _class_table(rows: list[list[str]], caption: str) -> Table:
    """Images per class: ``[class, train, test]`` rows, or ``[index, class, train, test]``."""
    columns = ["class", "train + validation", "test"]
    if rows and len(rows[0]) == 4:
        columns = ["#", *columns]
    return Table(columns, rows, caption=caption, numeric=[c != "class" for c in columns])
