"""The confirmation (best vs starting recipe, K seeds each, Welch on the test set) and the
report's hyperparameter-search section."""

from __future__ import annotations

import json

import pytest
from tunehelpers import quiet

from cifarlab.report.sections import write_report
from cifarlab.studies.stats import welch_difference
from cifarlab.tune.confirm import confirm, verdict


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _as_best(summary: dict, number: int) -> dict:
    row = next(t for t in summary["trials"] if t["number"] == number)
    return {**summary, "best": {k: row[k] for k in ("number", "value", "params", "seed", "run")}}


def test_verdict_says_better_only_when_the_interval_excludes_zero():
    assert verdict(0.9, (0.2, 1.6), 3, 7).startswith("BETTER")
    assert verdict(-0.9, (-1.6, -0.2), 3, 7).startswith("WORSE")
    text = verdict(0.9, (-0.1, 1.9), 3, 7)
    assert text.startswith("NOT SHOWN BETTER") and "within seed noise" in text


@pytest.mark.slow
def test_confirmation_and_the_report_section(copy_search, tiny_spec, tmp_path):
    out = copy_search()
    spec = tiny_spec()
    # The best trial as the starting recipe itself: nothing to train.
    same = confirm(spec, out, _as_best(_summary(out), 0), 2, data_dir="sample", log=quiet)
    assert "starting recipe itself" in same["verdict"] and same["start"] is None
    assert not (out / "confirm").exists()

    # Trial 1 taken as the best (the tiny search's own winner may be trial 0).
    summary = _as_best(_summary(out), 1)
    result = confirm(spec, out, summary, 2, data_dir="sample", log=quiet)
    assert result["seeds"] == [1000, 1001]
    values = {}
    for side in ("start", "trial-0001"):
        study = json.loads((out / "confirm" / side / "study.json").read_text())
        assert study["kind"] == "seeds" and study["recipe"] == str(out / "start.toml")
        runs = sorted((out / "confirm" / side / "runs").glob("*/seed*/metrics.json"))
        assert [p.parent.name for p in runs] == ["seed1000", "seed1001"]
        values[side] = [100 * json.loads(p.read_text())["test_accuracy"] for p in runs]
        recipe = (runs[0].parent / "recipe.toml").read_text()
        lr = 1e-3 if side == "start" else summary["best"]["params"]["optim.lr"]
        assert f"lr = {lr!r}" in recipe
    assert result["start"]["values"] == values["start"]
    assert result["tuned"]["values"] == values["trial-0001"]
    w = welch_difference(values["start"], values["trial-0001"])
    assert result["diff"] == pytest.approx(w.diff)
    if w.ci is not None:
        assert result["ci95"] == pytest.approx(list(w.ci))
    assert result["better"] == bool(w.ci and w.ci[0] > 0)
    assert result["verdict"] == verdict(w.diff, w.ci, 2, 1)
    assert json.loads((out / "confirm.json").read_text())["verdict"] == result["verdict"]
    assert result["verdict"] in (out / "confirm.md").read_text()

    html = write_report([out], tmp_path / "report.html").read_text()
    assert "<script" not in html
    for text in (
        "Hyperparameter search",
        "Trials by state",
        "The search space",
        "Optimisation history",
        "Parameter importance over 3 complete trials: PED-ANOVA",
        "Final validation accuracy against each searched field",
        "Confirmation on the test set: trial 1",
        result["verdict"].split(" (")[0],
    ):
        assert text in html, text
    assert html.count("data:image/png;base64,") == 2
    md = write_report([out], tmp_path / "report.md").read_text()
    assert "## Hyperparameter search" in md and "model.options.dropout" in md
