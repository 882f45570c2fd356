"""The report of a 100-class run: top-5 among the final metrics, the confusion figure across
the page with the most confused pairs below it, the per-class table in two indexed halves,
the data figures each across the page; a CIFAR-10 run keeps its side-by-side layout."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cifarlab.report import data_section
from cifarlab.report.document import Figure, Row, Table
from cifarlab.report.sections import build_document


def _section(doc, name):
    return next(s for s in doc.sections if s.id == name)


def _tables(blocks):
    for b in blocks:
        if isinstance(b, Table):
            yield b
        elif isinstance(b, Row):
            yield from (i for i in b.items if isinstance(i, Table))


@pytest.fixture
def hundred_doc(hundred_run, hundred_data, monkeypatch):
    # The data section finds the relabelled sample as the runs' data (finding a dataset is
    # report/inputs.py's concern, not this test's).
    monkeypatch.setattr(data_section, "find_data", lambda info, runs, where: (hundred_data, None))
    return build_document([hundred_run])


def test_a_100_class_run_lays_out_confusion_pairs_and_per_class_readably(hundred_doc, hundred_run):
    blocks = _section(hundred_doc, "training").blocks
    final = next(t for t in _tables(blocks) if t.caption == "Final metrics")
    assert any(row[0] == "test top-5 accuracy" and row[1].endswith("%") for row in final.rows)
    # the confusion figure alone across the page, not squeezed beside a 100-row table
    (confusion,) = [b for b in blocks if isinstance(b, Figure) and "confusion" in b.name]
    with Image.open(io.BytesIO(confusion.png)) as im:
        assert im.size[0] >= 900
    after = blocks[blocks.index(confusion) + 1]
    assert isinstance(after, Table) and after.caption.startswith("The 10 most confused pairs")
    assert after.columns == ["#", "true class", "predicted as", "images", "share of true class"]
    assert [r[0] for r in after.rows] == [str(k) for k in range(1, 11)]
    halves = blocks[blocks.index(confusion) + 2]
    assert isinstance(halves, Row) and len(halves.items) == 2
    rows = [r for t in halves.items for r in t.rows]
    assert [r[0] for r in rows] == [str(k) for k in range(100)]  # indexed as the figure's axes
    assert rows[99][1] == "spotted_truck"


def test_the_data_figures_of_100_classes_each_take_the_page_width(hundred_doc):
    blocks = _section(hundred_doc, "data").blocks
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert [f.name for f in figures] == [
        "data-train-examples",
        "data-train-histogram",
        "data-test-examples",
        "data-test-histogram",
    ]
    with Image.open(io.BytesIO(figures[1].png)) as im:
        width, height = im.size
    assert height > 2 * width  # one named bar per class, top to bottom
    halves = next(b for b in blocks if isinstance(b, Row))  # images per class, in two halves
    rows = [r for t in halves.items for r in t.rows]
    assert [r[:2] for r in rows[:2]] == [["0", "small_airplane"], ["1", "large_airplane"]]
    assert len(rows) == 100 and [len(t.rows) for t in halves.items] == [50, 50]


def test_a_cifar10_run_keeps_the_table_beside_the_confusion_figure(sample_run):
    blocks = _section(build_document([sample_run("seed-baseline")]), "training").blocks
    (row,) = [
        b
        for b in blocks
        if isinstance(b, Row)
        and isinstance(b.items[-1], Figure)
        and "confusion" in b.items[-1].name
    ]
    assert isinstance(row.items[0], Table) and len(row.items[0].rows) == 10
    assert row.items[0].columns == ["class", "test accuracy", "correct / images"]
    pairs = blocks[blocks.index(row) + 1]
    assert isinstance(pairs, Table) and pairs.caption.startswith("The ")


def test_a_100_class_confusion_png_from_before_is_redrawn(hundred_run, tmp_path):
    import shutil

    run = tmp_path / "old-run"
    shutil.copytree(hundred_run, run, ignore=shutil.ignore_patterns(".lock"))
    Image.new("RGB", (700, 600), "white").save(run / "confusion.png")  # the old, unreadable one
    blocks = _section(build_document([run]), "training").blocks
    (confusion,) = [b for b in blocks if isinstance(b, Figure) and "confusion" in b.name]
    assert confusion.png != (run / "confusion.png").read_bytes()
    with Image.open(io.BytesIO(confusion.png)) as im:
        assert im.size[0] >= 900
