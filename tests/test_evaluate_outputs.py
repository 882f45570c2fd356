"""Where `cifarlab evaluate` writes, and what it prints first: an older checkpoint's evaluation
(and export) in a folder of its own, never over the latest's; --out never inside a run; the data line
first; corruption seeds >= 0; a damaged corruption cache said in one warning line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cifarlab.cli.main import main
from cifarlab.rundir import load_checkpoint, save_checkpoint

FORMAT_KEYS = ("format", "format_version", "versions")


@pytest.fixture
def run(sample_run, tmp_path) -> Path:
    """A copy of a real tiny run whose checkpoint.prev.pt is an older step than checkpoint.pt."""
    dst = tmp_path / "run"
    shutil.copytree(sample_run("seed-baseline"), dst, ignore=shutil.ignore_patterns(".lock"))
    payload = {k: v for k, v in load_checkpoint(dst).items() if k not in FORMAT_KEYS}
    payload["step"] += 3  # a later checkpoint: the current one becomes checkpoint.prev.pt
    save_checkpoint(dst, payload, {"step": payload["step"]})
    return dst


def _evaluate(*args: str | Path) -> int:
    return main(["evaluate", *map(str, args), "--device", "cpu"])


def test_an_older_checkpoint_is_evaluated_into_its_own_folder(run, capsys):
    latest = load_checkpoint(run)["step"]
    older = load_checkpoint(run / "checkpoint.prev.pt")["step"]
    assert _evaluate(run, "--calibrate", "--corruptions", "fog", "--severities", "1") == 0
    mine = run / "evaluation" / "none"
    before = json.loads((mine / "evaluation.json").read_text())
    assert before["step"] == latest and "calibrated" in before
    assert _evaluate(run / "checkpoint.prev.pt") == 0
    after = json.loads((mine / "evaluation.json").read_text())
    assert after == before  # the latest's evaluation is untouched, its calibration kept
    theirs = run / "evaluation" / f"step-{older}" / "none"
    assert f"confusion matrix: {theirs}" in capsys.readouterr().out
    assert json.loads((mine / "corruptions.json").read_text())["step"] == latest
    assert json.loads((theirs / "evaluation.json").read_text())["step"] == older


def test_an_older_checkpoint_is_exported_into_its_own_folder(run, capsys):
    older = load_checkpoint(run / "checkpoint.prev.pt")["step"]
    assert main(["export", str(run), "--format", "safetensors"]) == 0
    mine = run / "export"
    before = {p.name: p.read_bytes() for p in mine.iterdir() if p.is_file()}
    assert main(["export", str(run / "checkpoint.prev.pt"), "--format", "safetensors"]) == 0
    after = {p.name: p.read_bytes() for p in mine.iterdir() if p.is_file()}
    assert after == before  # the latest's export is untouched
    theirs = run / "export" / f"step-{older}"
    assert json.loads((theirs / "model.json").read_text())["step"] == older
    assert f"metadata: {theirs / 'model.json'}" in capsys.readouterr().out


def test_calibrating_an_older_checkpoint_is_refused(run, capsys):
    assert _evaluate(run, "--calibrate") == 0
    before = (run / "temperature.json").read_bytes()
    capsys.readouterr()
    assert _evaluate(run / "checkpoint.prev.pt", "--calibrate") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("cifarlab: error: ") and "latest checkpoint" in line
    assert (run / "temperature.json").read_bytes() == before


def test_evaluate_out_inside_a_run_directory_is_refused(run, capsys):
    before = (run / "confusion.png").read_bytes()
    assert _evaluate(run, "--out", run) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "own input" in line
    assert (run / "confusion.png").read_bytes() == before


def test_a_negative_corruption_seed_is_refused_before_anything(run, capsys):
    assert _evaluate(run, "--corruptions", "fog", "--corruption-seed", "-1") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "cifarlab: error: --corruption-seed: must be 0 or more, got -1"
    assert not (run / "evaluation").exists()


def test_with_corruptions_the_data_line_still_comes_first(run, capsys):
    assert _evaluate(run, "--corruptions", "fog", "--severities", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("data: ")
    assert sum(line.startswith("data: ") for line in lines) == 1


def test_a_truncated_corruption_cache_cell_is_said_in_one_warning_line(run, capsys):
    from cifarlab.data.cifar10c import corruptions_dir

    args = (run, "--corruptions", "fog", "--severities", "2", "--corruption-seed", "7")
    assert _evaluate(*args) == 0
    capsys.readouterr()
    (cell,) = corruptions_dir().rglob("fog-s2-seed7-*.npy")
    cell.write_bytes(cell.read_bytes()[:1000])  # truncated: a full disk, a killed copy
    assert _evaluate(*args) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("cifarlab: warning: ")]
    assert len(warnings) == 1 and str(cell) in warnings[0] and "damaged" in warnings[0]
    assert "UserWarning" not in err


def test_a_corruption_cache_that_cannot_be_written_is_one_warning_line(run, monkeypatch, capsys):
    import errno
    import warnings

    from cifarlab.data import cache

    def full_disk(path, content, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "write_atomic", full_disk)
    args = (run, "--corruptions", "fog", "--severities", "3", "--corruption-seed", "11")
    with warnings.catch_warnings():  # a raw Python warning (file, line) fails the test
        warnings.simplefilter("error", UserWarning)
        assert _evaluate(*args) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cifarlab: warning: ")]
    assert len(lines) == 1 and "could not cache" in lines[0] and "No space left" in lines[0]
