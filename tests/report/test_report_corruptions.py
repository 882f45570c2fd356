"""The report's corruption-robustness section: every run with corruptions.json, side by side."""

from __future__ import annotations

import json
import shutil

import pytest

from cifarlab.errors import CifarlabError
from cifarlab.report.document import Figure, Heading, Paragraph, Row, Table
from cifarlab.report.sections import build_document, write_report
from cifarlab.robustness import evaluate_corruptions, summarize
from cifarlab.rundir import CORRUPTIONS_JSON, EVALUATION, EVALUATION_DIR


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def _write_result(run, table, clean, tta="none", ece=None):
    """A corruptions.json (and an evaluation.json with ``ece``) as cifarlab evaluate writes."""
    folder = run / EVALUATION_DIR / tta
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "corruptions": list(table),
        "severities": sorted({s for row in table.values() for s in row}),
        "seed": 0,
        "tta": tta,
        "clean_accuracy": clean,
        "accuracy": {n: {str(s): a for s, a in row.items()} for n, row in table.items()},
        **summarize(table, clean),
    }
    (folder / CORRUPTIONS_JSON).write_text(json.dumps(result))
    if ece is not None:
        (folder / EVALUATION).write_text(json.dumps({"accuracy": clean, "ece": ece}))


def _section(doc):
    return next((s for s in doc.sections if s.id == "corruptions"), None)


def _tables(section):
    out = []
    for b in section.blocks:
        out += (
            [b]
            if isinstance(b, Table)
            else [i for i in getattr(b, "items", []) if isinstance(i, Table)]
        )
    return out


@pytest.fixture
def two_runs(tmp_path, tiny_runs):
    a = _copy(tiny_runs["seed-baseline"], tmp_path / "baseline")
    b = _copy(tiny_runs["seed-improved"], tmp_path / "improved")
    _write_result(a, {"fog": {1: 0.5, 5: 0.3}, "snow": {1: 0.4, 5: 0.2}}, clean=0.6, ece=0.081)
    _write_result(b, {"fog": {1: 0.7, 5: 0.6}, "snow": {1: 0.6, 5: 0.5}}, clean=0.75)
    return a, b


def test_runs_are_compared_on_clean_mean_corruption_accuracy_and_ece(two_runs):
    doc = build_document(list(two_runs))
    section = _section(doc)
    assert section is not None and section.title == "Corruption robustness"
    comparison = _tables(section)[0]
    assert comparison.columns[3:7] == [
        "clean accuracy",
        "mean corruption accuracy",
        "relative to clean",
        "ECE",
    ]
    rows = {r[0]: r for r in comparison.rows}
    # ECE: evaluate's evaluation.json beside the corruption numbers first, else training's own
    assert rows["baseline"][3:] == ["60.00%", "35.00%", "58.33%", "8.10%", "—"]
    trained = json.loads((two_runs[1] / "metrics.json").read_text())["test_ece"]
    assert rows["improved"][3:] == ["75.00%", "60.00%", "80.00%", f"{trained * 100:.2f}%", "—"]
    # a chart of both, and per run a table of corruption x severity beside its chart
    figures = [b for b in section.blocks if isinstance(b, Figure)]
    assert len(figures) == 1 and figures[0].png.startswith(b"\x89PNG")
    details = [b for b in section.blocks if isinstance(b, Row)]
    assert len(details) == 2
    table = details[0].items[0]
    assert table.columns == ["corruption", "severity 1", "severity 5", "mean"]
    assert table.rows[-1] == ["mean", "45.00%", "25.00%", "35.00%"]


def test_ece_not_recorded_shows_as_a_dash(tmp_path, tiny_runs):
    run = _copy(tiny_runs["seed-baseline"], tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics = {k: v for k, v in metrics.items() if "ece" not in k}
    (run / "metrics.json").write_text(json.dumps(metrics))
    _write_result(run, {"fog": {1: 0.5}}, clean=0.6)
    assert _tables(_section(build_document([run])))[0].rows[0][-1] == "—"


def test_no_corruptions_json_no_section(tiny_runs):
    doc = build_document([tiny_runs["seed-baseline"]])
    assert _section(doc) is None


def test_a_malformed_corruptions_json_is_a_note_not_a_failure(tmp_path, tiny_runs):
    run = _copy(tiny_runs["seed-baseline"], tmp_path / "run")
    folder = run / EVALUATION_DIR / "none"
    folder.mkdir(parents=True)
    (folder / CORRUPTIONS_JSON).write_text(json.dumps({"accuracy": {"fog": {}}}))  # no cells
    section = _section(build_document([run]))
    notes = [b.text for b in section.blocks if isinstance(b, Paragraph) and b.note]
    assert any("malformed" in n for n in notes)


@pytest.mark.parametrize("value", ["high", 1.5, float("nan")])
def test_a_bad_accuracy_in_corruptions_json_is_one_line_naming_it(tmp_path, tiny_runs, value):
    run = _copy(tiny_runs["seed-baseline"], tmp_path / "run")
    folder = run / EVALUATION_DIR / "none"
    folder.mkdir(parents=True)
    (folder / CORRUPTIONS_JSON).write_text(json.dumps({"accuracy": {"fog": {"1": value}}}))
    with pytest.raises(CifarlabError, match=r"corruptions.json: accuracy.fog.1 is .*\[0, 1\]"):
        build_document([run])


def test_names_from_the_file_are_shown_as_text_in_html_and_markdown(tmp_path, tiny_runs):
    run = _copy(tiny_runs["seed-baseline"], tmp_path / "run")
    _write_result(run, {"<b>fog</b>$x$": {2: 0.5}}, clean=0.5, tta="flip")
    html = write_report([run], tmp_path / "r.html").read_text()
    assert "<b>fog</b>" not in html and "&lt;b&gt;fog&lt;/b&gt;" in html
    assert "run (flip TTA)" in html
    md = write_report([run], tmp_path / "r.md").read_text()
    assert "Corruption robustness" in md and "<b>fog" not in md


def test_a_study_step_shows_the_mean_over_its_seeds(tmp_path, studies):
    study = tmp_path / "seeds"
    shutil.copytree(studies["seeds"], study)
    runs = sorted((study / "runs").glob("*/seed*"))
    for k, run in enumerate(runs):
        _write_result(run, {"contrast": {3: 0.4 + 0.1 * k}}, clean=0.7)
    section = _section(build_document([study]))
    rows = {r[0]: r for r in _tables(section)[0].rows}
    step_row = rows["seed-improved: seed-improved"]  # "<study>: <step>"
    assert step_row[1] == str(len(runs))
    assert step_row[4] == "50.00% ± 10.00"
    assert step_row[-1] == "—"  # the first (only) step has nothing to differ from


def test_consecutive_ladder_steps_are_compared_with_welch(tmp_path, studies):
    study = tmp_path / "ladder"
    shutil.copytree(studies["ablation"], study)
    steps = [p.name for p in sorted((study / "runs").iterdir())]
    order = json.loads((study / "study.json").read_text())["steps"]
    names = [s["name"] for s in order if s["name"] in steps]
    first, second, third = names[:3]
    # seeds 0, 1: step 2 clearly above step 1, step 3 the same as step 2 within its spread
    values = {first: (0.40, 0.41), second: (0.60, 0.61), third: (0.59, 0.62)}
    for step, accs in values.items():
        for seed, acc in enumerate(accs):
            _write_result(study / "runs" / step / f"seed{seed}", {"fog": {3: acc}}, clean=0.7)
    rows = {r[0]: r for r in _tables(_section(build_document([study])))[0].rows}
    name = json.loads((study / "study.json").read_text())["name"]
    assert rows[f"{name}: {first}"][-1] == "—"
    # Welch by hand: s^2 = 0.5 (points^2) in both steps, se = sqrt(0.5/2 + 0.5/2), df = 2,
    # t(0.975, 2) = 4.303: 20 ± 3.04
    assert rows[f"{name}: {second}"][-1] == "+20.00 [+16.96, +23.04] yes (higher)"
    assert rows[f"{name}: {third}"][-1].endswith("no (within noise)")


def test_a_real_evaluation_reaches_the_report(tmp_path, tiny_runs, sample_data):
    run = _copy(tiny_runs["seed-improved"], tmp_path / "real")
    evaluate_corruptions(
        run,
        corruptions=["gaussian_noise"],
        severities=[1, 2],
        data=sample_data,
        out_dir=run / EVALUATION_DIR / "none",
    )
    section = _section(build_document([run]))
    row = section.blocks[-1]
    assert isinstance(section.blocks[-2], Heading) and section.blocks[-2].text == "real"
    assert isinstance(row, Row) and isinstance(row.items[1], Figure)
    assert [r[0] for r in row.items[0].rows] == ["gaussian_noise", "mean"]
