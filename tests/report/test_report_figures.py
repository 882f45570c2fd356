"""The report draws the figures a run lacks in memory (cifarlab.plotting.render): no
temporary directory is made, and every drawn figure is a PNG in the document."""

from __future__ import annotations

import shutil
import tempfile

from cifarlab.report.document import Figure, Row
from cifarlab.report.sections import build_document

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _no_temporary_directory(*args, **kwargs):
    raise AssertionError("the report made a temporary directory")


def test_figures_a_run_lacks_are_drawn_without_a_temporary_directory(
    tmp_path, tiny_runs, monkeypatch
):
    run = tmp_path / "run"  # no PNGs: the curves and the confusion matrix are drawn
    shutil.copytree(
        tiny_runs["seed-baseline"], run, ignore=shutil.ignore_patterns("*.png", ".lock")
    )
    monkeypatch.setattr(tempfile, "TemporaryDirectory", _no_temporary_directory)
    monkeypatch.setattr(tempfile, "mkdtemp", _no_temporary_directory)
    doc = build_document([run])
    figures = {}
    for section in doc.sections:
        for block in section.blocks:
            items = block.items if isinstance(block, Row) else [block]
            figures.update((f.name, f.png) for f in items if isinstance(f, Figure))
    # The data section's example images and histograms (the bundled sample is found), the
    # run's curves and confusion matrix, its reliability diagram from metrics.json's bins.
    for name in (
        "data-train-examples",
        "data-test-histogram",
        "run-loss",
        "run-accuracy",
        "run-confusion",
        "run-reliability",
    ):
        assert name in figures, sorted(figures)
        assert figures[name].startswith(PNG_MAGIC), name
