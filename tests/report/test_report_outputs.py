"""What `cifarlab report` may write, and what it reads back: never over its own inputs or into
a run, study or search directory, never over a figure folder it did not make, never into a
folder that is not there; every stored number it shows is checked (one line, exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cifarlab.cli.main import main


@pytest.fixture
def run(tiny_runs, tmp_path) -> Path:
    """A private copy of a real tiny run (checkpoints included)."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_runs["seed-baseline"], dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def _report(*args: str | Path) -> int:
    return main(["report", *map(str, args)])


def _one_error(capsys) -> str:
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("cifarlab: error: ")
    return line


@pytest.mark.parametrize("name", ["checkpoint.pt", "metrics.json", "history.json"])
def test_report_refuses_to_write_over_a_file_of_the_run_it_reads(run, name, capsys):
    before = (run / name).read_bytes()
    assert _report(run, "-o", run / name, "--format", "html") == 2
    line = _one_error(capsys)
    assert str(run / name) in line and "own input" in line
    assert (run / name).read_bytes() == before


def test_report_refuses_to_write_into_another_run_directory(run, tiny_runs, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(tiny_runs["seed-improved"], other, ignore=shutil.ignore_patterns(".lock"))
    assert _report(run, "-o", other / "report.html") == 2
    line = _one_error(capsys)
    assert "a run directory" in line and not (other / "report.html").exists()


@pytest.mark.parametrize("what", ["a copied run", "a user's own file"])
def test_markdown_report_never_replaces_a_figure_folder_it_did_not_make(
    run, tmp_path, what, capsys
):
    out = tmp_path / "rep.md"
    folder = tmp_path / "rep_files"
    if what == "a copied run":
        shutil.copytree(run, folder)
    else:
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
    before = sorted(p.name for p in folder.rglob("*"))
    assert _report(run, "--format", "md", "-o", out) == 2
    line = _one_error(capsys)
    assert str(folder) in line and "did not make" in line
    assert sorted(p.name for p in folder.rglob("*")) == before and not out.exists()


def test_markdown_report_replaces_its_own_figure_folder(run, tmp_path, capsys):
    out = tmp_path / "rep.md"
    assert _report(run, "-o", out) == 0
    (tmp_path / "rep_files" / "stale.png").write_bytes(b"old figure")
    assert _report(run, "-o", out) == 0  # the folder carries the marker: ours to replace
    assert not (tmp_path / "rep_files" / "stale.png").exists()
    assert (tmp_path / "rep_files" / ".cifarlab-report").is_file()


def test_an_older_reports_figure_folder_without_the_marker_is_still_replaced(run, tmp_path):
    out = tmp_path / "rep.md"
    assert _report(run, "-o", out) == 0
    (tmp_path / "rep_files" / ".cifarlab-report").unlink()  # as cifarlab made it before
    assert _report(run, "-o", out) == 0  # only PNGs that rep.md links: an older report's
    (tmp_path / "rep_files" / ".cifarlab-report").unlink()
    (tmp_path / "rep_files" / "holiday.png").write_bytes(b"a user's picture")
    assert _report(run, "-o", out) == 2  # a PNG the report does not link: not ours
    assert (tmp_path / "rep_files" / "holiday.png").read_bytes() == b"a user's picture"


def test_report_into_a_missing_folder_is_refused_and_creates_nothing(run, tmp_path, capsys):
    out = tmp_path / "missing" / "deeper" / "r.html"
    assert _report(run, "-o", out) == 2
    line = _one_error(capsys)
    assert "missing" in line and "does not exist" in line
    assert not (tmp_path / "missing").exists()


# --------------------------------------------------------------------------- stored numbers


def _edit(path: Path, **changes) -> None:
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "value",
    [1.5, -0.1, "0.9", None, float("nan")],
    ids=["above-1", "negative", "text", "null", "nan"],
)
def test_a_bad_test_accuracy_in_metrics_json_is_one_line_naming_it(run, tmp_path, value, capsys):
    if value is None:  # null means "not measured": shown as missing, not an error
        _edit(run / "metrics.json", test_accuracy=None)
        assert _report(run, "-o", tmp_path / "r.html") == 0
        return
    _edit(run / "metrics.json", test_accuracy=value)  # json.dumps writes nan as NaN
    assert _report(run, "-o", tmp_path / "r.html") == 2
    line = _one_error(capsys)
    assert "metrics.json: test_accuracy is " in line and not (tmp_path / "r.html").exists()


def test_a_bad_ece_in_evaluation_json_is_one_line_naming_it(run, tmp_path, capsys):
    assert main(["evaluate", str(run), "--device", "cpu", "--json"]) == 0
    capsys.readouterr()
    _edit(run / "evaluation" / "none" / "evaluation.json", ece="low")
    assert _report(run, "-o", tmp_path / "r.html") == 2
    line = _one_error(capsys)
    assert 'evaluation.json: ece is "low", not a number' in line


def _tune_dir(root: Path, value) -> Path:
    """A tune directory as `cifarlab tune` leaves it (tune.json, summary.json), by hand."""
    root.mkdir()
    (root / "tune.json").write_text(json.dumps({"format": "cifarlab-tune", "study": "s"}))
    trial = {
        "number": 0,
        "state": "complete",
        "value": value,
        "params": {"optim.lr": 0.01},
        "seed": 0,
        "start": True,
        "intermediate": [[500, 40.0], [1000, 50.0]],
        "duration_s": 1.0,
    }
    summary = {
        "format": "cifarlab-tune-summary",
        "study": "s",
        "storage": "sqlite",
        "recipe": "seed-baseline",
        "target_trials": 1,
        "objective": "validation accuracy (%)",
        "vary_seed": False,
        "pruner": {"name": "none", "warmup": 0.2, "startup": 0},
        "space": [
            {
                "field": "optim.lr",
                "describe": "log-uniform",
                "start": 0.01,
                "distribution": {"log_uniform": [0.001, 0.1]},
            }
        ],
        "counts": {"complete": 1, "pruned": 0, "failed_error": 0, "failed_killed": 0, "running": 0},
        "best": {"number": 0, "value": value, "params": {"optim.lr": 0.01}, "seed": 0},
        "importance": {"values": {}, "note": "one trial"},
        "trials": [trial],
    }
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def test_a_tune_summary_with_a_text_trial_value_is_one_line_not_a_traceback(tmp_path, capsys):
    good = _tune_dir(tmp_path / "good", 50.0)
    assert _report(good, "-o", tmp_path / "good.html") == 0
    bad = _tune_dir(tmp_path / "bad", "50")
    assert _report(bad, "-o", tmp_path / "bad.html") == 2
    line = _one_error(capsys)
    assert 'summary.json: trials[0].value is "50", not a number' in line
