"""cifarlab.plotting: every figure made one way, rendered in memory or saved atomically, and
drawing never touches pyplot or the caller's matplotlib backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cifarlab.errors import OutputError
from cifarlab.plotting import figure, plain, render, save

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _line_figure():
    fig, ax = figure(3, 2)
    ax.plot([0, 1, 2], [1, 0, 1], label=plain("a $label$"))
    ax.legend()
    return fig


def test_render_gives_png_and_svg_bytes():
    fig = _line_figure()
    png = render(fig)
    assert png.startswith(PNG_MAGIC)
    assert int.from_bytes(png[16:20], "big") == 300  # 3 inches at DPI 100
    svg = render(fig, "svg")
    assert b"<svg" in svg[:1000]
    with pytest.raises(ValueError, match="choose one of png, svg"):
        render(fig, "pdf")


def test_save_writes_the_same_png_atomically(tmp_path):
    fig = _line_figure()
    path = save(fig, tmp_path / "a.png")
    assert path.read_bytes() == render(fig)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left


def test_save_into_a_missing_folder_is_one_line_and_leaves_nothing(tmp_path):
    with pytest.raises(OutputError, match="could not write") as err:
        save(_line_figure(), tmp_path / "gone" / "a.png")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "gone").exists()


def test_drawing_leaves_pyplot_and_the_callers_backend_alone(tmp_path):
    """A notebook's backend stays what it chose; no pyplot figure is left open."""
    code = f"""
    import sys
    import matplotlib
    matplotlib.use("svg")
    from cifarlab.figures import plot_confusion, plot_curves
    from cifarlab.studies.figures import plot_accuracies_strip
    plot_curves({{"step": [0, 1], "train_loss": [2.0, 1.0], "val_acc": [0.1, 0.2]}},
               {str(tmp_path / "loss.png")!r}, {str(tmp_path / "accuracy.png")!r})
    plot_confusion([[3, 1], [0, 4]], ["cat", "dog"], {str(tmp_path / "c.png")!r})
    summary = {{"name": "s", "rows": [{{"step": "a", "values": [70.0, 71.0]}}]}}
    plot_accuracies_strip(summary, {str(tmp_path / "s.png")!r})
    assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
    assert "matplotlib.pyplot" not in sys.modules
    """
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"loss.png", "accuracy.png", "c.png", "s.png"}
