"""The study's accuracy-by-step figure: test accuracy per step, and the final training
accuracy beside it where the runs recorded it (the depth ladder's question is about
training error)."""

from __future__ import annotations

import cifarlab.studies.figures as figures


def _row(step: str, values: list[float], train: list[float] | None) -> dict:
    mean = sum(values) / len(values)
    row = {
        "step": step, "n": len(values), "mean": mean, "ci95": [mean - 1, mean + 1],
        "values": values, "reference": None,
    }  # fmt: skip
    if train is not None:
        t = sum(train) / len(train)
        row["train_accuracy"] = {"n": len(train), "mean": t, "ci95": [t - 2, t + 2]}
    return row


def _drawn(monkeypatch, tmp_path, rows: list[dict]):
    captured = {}

    def keep(fig, path):
        captured["fig"] = fig
        return path

    monkeypatch.setattr(figures, "save", keep)
    figures.plot_accuracy_by_step({"name": "depth", "rows": rows}, tmp_path / "a.png")
    return captured["fig"].axes[0]


def test_training_accuracy_drawn_beside_the_test_accuracy(monkeypatch, tmp_path):
    rows = [
        _row("plain-20", [80.0, 81.0], [85.0, 86.0]),
        _row("plain-56", [78.0, 79.0], [70.0, 72.0]),
    ]
    ax = _drawn(monkeypatch, tmp_path, rows)
    labels = ax.get_legend_handles_labels()[1]
    assert "final training accuracy, 95% CI" in labels
    squares = [line for line in ax.lines if line.get_marker() == "s"]
    assert [tuple(line.get_ydata()) for line in squares] == [(85.5,), (71.0,)]
    assert "training" in ax.get_title() and ax.get_ylabel() == "accuracy (%)"


def test_a_summary_without_training_values_draws_test_accuracy_only(monkeypatch, tmp_path):
    ax = _drawn(
        monkeypatch, tmp_path, [_row("a", [70.0, 71.0], None), _row("b", [72.0, 73.0], None)]
    )
    assert not [line for line in ax.lines if line.get_marker() == "s"]
    assert ax.get_ylabel() == "test accuracy (%)"
