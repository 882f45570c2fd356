"""Plotting: how every figure cifarlab draws is made, saved and rendered.

One style for all of them (run figures in :mod:`cifarlab.figures`, a study's in
:mod:`cifarlab.studies.figures`, the dataset's in :mod:`cifarlab.data.explore`, the report's
in :mod:`cifarlab.report.charts` and :mod:`cifarlab.report.tune_section`):

- matplotlib's object-oriented API on an Agg canvas (:func:`figure`): no pyplot state to
  leak or close, no display needed, and no ``matplotlib.use`` that would switch the backend
  of a notebook or script that imports cifarlab;
- constrained layout, so titles, legends and colour bars get room without a
  ``tight_layout`` call per figure;
- :data:`DPI` for every PNG, written to a file atomically (:func:`save`, never in place,
  never through a symlink) or rendered to bytes in memory (:func:`render`, PNG or SVG), so
  the report draws its figures without a temporary directory;
- labels that come from run or study directories drawn literally (:func:`plain`).

matplotlib is imported inside the functions: importing this module is cheap, and a command
that draws nothing never loads it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_atomic

DPI = 100
FORMATS = ("png", "svg")


def figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **subplots: Any):
    """A new ``width`` × ``height`` inch figure and its axes (``Figure.subplots``: one Axes
    for 1 × 1, an array otherwise or with ``squeeze=False``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def plain(label: object) -> str:
    """A label drawn literally: a '$' would otherwise start mathtext (and can fail to parse)."""
    return str(label).replace("$", r"\$")


def render(fig: Any, fmt: str = "png") -> bytes:
    """``fig`` as PNG (at :data:`DPI`) or SVG bytes, in memory."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI)
    return buf.getvalue()


def save(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """``fig`` as a PNG file at ``path``, written atomically (cifarlab.atomic.write_atomic:
    an I/O failure raises one line and leaves no partial file); ``kwargs`` go to it."""
    return write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI), **kwargs)
