"""cifarlab train --quick-check: every phase of a run for a few steps, said on its first line,
into a run directory marked as a quick check."""

from __future__ import annotations

import json

import pytest

from cifarlab.cli.main import main
from cifarlab.errors import TrainingError
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``cifarlab train --quick-check`` of seed-improved on the sample, from a fresh folder:
    (the run directory, the lines it printed)."""
    import contextlib
    import io
    import os

    here = tmp_path_factory.mktemp("quick")
    cwd, printed = os.getcwd(), io.StringIO()
    os.chdir(here)
    try:
        argv = ["train", "--quick-check", "--recipe", "seed-improved", "--data-dir", "sample"]
        with contextlib.redirect_stdout(printed):
            code = main([*argv, "--set", "train.keep_best=true", "--no-progress", "--seed", "3"])
        assert code == 0
    finally:
        os.chdir(cwd)
    return here / "runs" / "quick-check" / "seed-improved-seed3", printed.getvalue().splitlines()


def test_a_quick_check_runs_every_phase_and_says_so_first(quick_run):
    run, lines = quick_run
    assert lines[0].startswith("quick check: 4 training steps") and "not a result" in lines[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["quick_check"] is True and metrics["steps"] == 4
    history = json.loads((run / "history.json").read_text())
    assert history["step"] == [0, 2, 4] and all(v is not None for v in history["val_acc"])
    assert metrics["test_count"] == 256 and metrics["data"]["n_val"] == 256
    for name in ("loss.png", "accuracy.png", "confusion.png", "history.csv", "recipe.toml"):
        assert (run / name).is_file(), name
    checkpoint = load_checkpoint(run)
    assert checkpoint["step"] == 4 and checkpoint["quick_check"] is True
    assert json.loads((run / "checkpoint.json").read_text())["quick_check"] is True
    assert load_checkpoint(run / "checkpoint.best.pt")["quick_check"] is True
    # The recipe is the real one, 25 epochs: the quick check ran its first steps only.
    assert "epochs = 25" in (run / "recipe.toml").read_text()


def test_the_first_line_of_a_quick_check_says_it_is_one(tmp_path, sample_data):
    lines: list[str] = []
    out = tmp_path / "qc"
    train(
        "seed-baseline",
        out_dir=out,
        data=sample_data,
        quick_check=True,
        progress=False,
        log=lines.append,
    )
    assert lines[0].startswith("quick check: 4 training steps") and "not a result" in lines[0]
    assert str(out) in lines[0]


def test_a_quick_check_is_not_resumed_nor_extended(quick_run, capsys):
    quick_run = quick_run[0]
    with pytest.raises(TrainingError, match="a quick check is a new run"):
        train(out_dir=quick_run, resume=True, quick_check=True)
    before = (quick_run / "metrics.json").read_bytes()
    argv = ["train", "--resume", str(quick_run), "--data-dir", "sample", "--no-progress"]
    capsys.readouterr()
    assert main([*argv, "--set", "train.epochs=30", "--allow-change", "train.epochs"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a quick check (--quick-check) is not trained on" in err and len(err.splitlines()) == 1
    assert (quick_run / "metrics.json").read_bytes() == before
