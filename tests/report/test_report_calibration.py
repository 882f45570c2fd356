"""The report's calibration section: numbers from metrics.json or `cifarlab evaluate`, the
temperature when one was fitted, reliability diagrams, study means, bad values tolerated."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cifarlab.errors import CifarlabError
from cifarlab.evaluate import evaluate
from cifarlab.report.sections import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _section(text: str) -> str:
    start = text.index("## Calibration")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _row(section: str, label: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_calibration_of_a_run_and_of_a_seed_study(tmp_path, tiny_runs, studies):
    run = tiny_runs["seed-baseline"]
    m = json.loads((run / "metrics.json").read_text())
    out = write_report([run, studies["seeds"]], tmp_path / "r.md")
    section = _section(out.read_text(encoding="utf-8"))
    assert "15 equal-width confidence bins" in section
    cells = _row(section, "seed-baseline")
    assert cells[1] == "end of training (metrics.json)"
    assert cells[2:6] == [
        f"{m['test_ece'] * 100:.2f}%",
        f"{m['test_nll']:.4f}",
        f"{m['test_brier']:.4f}",
        f"{m['val_ece'] * 100:.2f}%",
    ]
    assert cells[6:] == ["—", "—", "—"]  # no temperature fitted
    # One diagram per run shown in detail (the run, and the study's median seed), drawn
    # from the bins in metrics.json.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+reliability[^)]*)\)", section)
    assert len(links) == 2
    assert all((tmp_path / link).read_bytes().startswith(PNG_MAGIC) for link in links)
    # The seed study: the mean over its 3 seeds (copies of one run: the same numbers).
    study_m = json.loads(next((studies["seeds"] / "runs").rglob("metrics.json")).read_text())
    assert "### seed-improved: calibration per step" in section
    step = next(line for line in section.splitlines() if line.startswith("| seed-improved | 3 |"))
    assert f"{study_m['test_ece'] * 100:.2f}% ± 0.00" in step


def test_a_calibrated_run_shows_its_temperature_and_own_diagram(tmp_path, tiny_runs, sample_data):
    run = tmp_path / "calibrated"
    shutil.copytree(tiny_runs["seed-improved"], run)
    result = evaluate(
        run, data=sample_data, device="cpu", out_dir=run / "evaluation" / "none", calibrate=True
    )
    out = write_report([run], tmp_path / "r.md")
    section = _section(out.read_text(encoding="utf-8"))
    cells = _row(section, "calibrated")
    assert cells[1] == f"cifarlab evaluate (step {result['step']})"
    assert cells[2] == f"{result['ece'] * 100:.2f}%"
    assert cells[6] == f"{result['temperature']['value']:.3f}"
    assert cells[7] == f"{result['calibrated']['ece'] * 100:.2f}%"
    assert cells[8] == f"{result['calibrated']['nll']:.4f}"
    (link,) = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section)
    own = (run / "evaluation" / "none" / "reliability.png").read_bytes()
    assert (tmp_path / link).read_bytes() == own  # evaluate's figure, not a redrawing


def test_a_calibration_number_of_the_wrong_type_is_one_line_naming_it(tmp_path, tiny_runs):
    run = tmp_path / "damaged"
    shutil.copytree(tiny_runs["seed-baseline"], run)
    path = Path(run / "metrics.json")
    m = json.loads(path.read_text())
    m["test_ece"] = "<b>0.1</b>"  # a hand-edited value: every number read back is checked
    path.write_text(json.dumps(m))
    with pytest.raises(
        CifarlabError, match=r"metrics.json: test_ece is .*not a number in \[0, 1\]"
    ):
        write_report([run], tmp_path / "r.md")
    assert not (tmp_path / "r.md").exists()


def test_bad_reliability_bins_are_left_out_not_fatal(tmp_path, tiny_runs):
    run = tmp_path / "damaged"
    shutil.copytree(tiny_runs["seed-baseline"], run)
    path = Path(run / "metrics.json")
    m = json.loads(path.read_text())
    m["test_reliability"]["count"] = [1, 2]
    path.write_text(json.dumps(m))
    text = write_report([run], tmp_path / "r.md").read_text(encoding="utf-8")
    section = _section(text)
    assert _row(section, "damaged")[2] == f"{m['test_ece'] * 100:.2f}%"
    assert "reliability" not in "".join(re.findall(r"\]\(([^)]+)\)", section))


def test_ladder_steps_compare_ece_with_welch(tmp_path, studies):
    study = tmp_path / "ladder"
    shutil.copytree(studies["ablation"], study)
    names = [s["name"] for s in json.loads((study / "study.json").read_text())["steps"]]
    first, second = names[:2]
    # seeds 0, 1: the second step's ECE 5 points lower, within 1 point of spread
    for step, eces in {first: (0.08, 0.09), second: (0.03, 0.04)}.items():
        for seed, ece in enumerate(eces):
            path = study / "runs" / step / f"seed{seed}" / "metrics.json"
            m = json.loads(path.read_text())
            m["test_ece"] = ece
            path.write_text(json.dumps(m))
    section = _section(write_report([study], tmp_path / "r.md").read_text(encoding="utf-8"))
    assert _row(section, first)[3] == "—"
    # Welch by hand: s^2 = 0.5 (points^2) each, se = sqrt(0.5), df = 2, t = 4.303
    cells = [c.replace("\\", "") for c in _row(section, second)[2:4]]  # Markdown escapes "["
    assert cells == ["3.50% ± 0.71", "-5.00 [-8.04, -1.96] yes (lower)"]
