"""A symlink planted at any output path of a run is never followed.

Someone who can write into a run directory (a shared scratch folder, a copied-in run) could
plant ``RUN/confusion.png -> ~/.bashrc``. Every write of a run goes through
``cifarlab.atomic.write_atomic``: a temp file beside the target, renamed over the link, so the link is
replaced and its target is untouched.
"""

from __future__ import annotations

import os

import pytest

from cifarlab.errors import TrainingError
from cifarlab.evaluate import evaluate
from cifarlab.rundir import (
    ACCURACY_FIGURE,
    CHECKPOINT,
    CONFUSION_FIGURE,
    EVALUATION,
    HISTORY_CSV,
    HISTORY_JSON,
    LOSS_FIGURE,
    METRICS,
    PREVIOUS,
    RECIPE,
    SUMMARY,
)
from cifarlab.train.loop import train

TINY = {"train.epochs": 0.2, "train.eval_points": 2, "system.threads": 1}
QUIET = {"progress": False, "log": lambda s: None}
# Outputs whose presence would mark the folder as holding a run: planted as dangling links
# (a write through one would create its target). The others point at existing files.
DANGLING = (METRICS, HISTORY_JSON, CHECKPOINT, PREVIOUS)
EXISTING = (RECIPE, SUMMARY, HISTORY_CSV, LOSS_FIGURE, ACCURACY_FIGURE, CONFUSION_FIGURE)


def test_no_output_of_a_run_follows_a_planted_symlink(tmp_path, sample_data):
    run, victims = tmp_path / "run", tmp_path / "victims"
    run.mkdir()
    victims.mkdir()
    for name in EXISTING:
        (victims / name).write_text("precious\n")
        os.symlink(victims / name, run / name)
    for name in DANGLING:
        os.symlink(victims / f"new-{name}", run / name)

    train("seed-baseline", out_dir=run, data=sample_data, overrides=TINY, **QUIET)

    assert sorted(p.name for p in victims.iterdir()) == sorted(EXISTING)  # nothing created
    for name in EXISTING:
        assert (victims / name).read_text() == "precious\n", name
    for name in (*EXISTING, METRICS, HISTORY_JSON, CHECKPOINT):
        assert (run / name).is_file() and not (run / name).is_symlink(), name


def test_evaluate_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path, sample_data):
    run, victim = tmp_path / "run", tmp_path / "victim.png"
    train("seed-baseline", out_dir=run, data=sample_data, overrides=TINY, **QUIET)
    out = run / "evaluation" / "none"
    out.mkdir(parents=True)
    victim.write_text("precious\n")
    for name in (CONFUSION_FIGURE, EVALUATION):
        os.symlink(victim, out / name)
    evaluate(run, data=sample_data, out_dir=out)
    assert victim.read_text() == "precious\n"
    assert not (out / CONFUSION_FIGURE).is_symlink() and (out / EVALUATION).is_file()


def test_a_planted_lock_symlink_is_one_clear_error(tmp_path, sample_data):
    run, victim = tmp_path / "run", tmp_path / "victim"
    run.mkdir()
    victim.write_text("precious\n")
    os.symlink(victim, run / ".lock")
    with pytest.raises(TrainingError) as err:
        train("seed-baseline", out_dir=run, data=sample_data, overrides=TINY, **QUIET)
    assert ".lock" in str(err.value) and "\n" not in str(err.value)
    assert victim.read_text() == "precious\n"
