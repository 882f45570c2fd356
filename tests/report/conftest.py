"""Fixtures for the report tests: two real tiny runs, and study directories built from them.

The study directories follow the study contract (study.json written from a StudySpec,
runs/<step>/seed<k>/) but are assembled here from copies of two real runs, so these tests
do not wait on `cifarlab ablate/seeds`. The copies get synthetic per-seed test accuracies in
their metrics.json, so the tables and charts have something to show; every other file is
the real run's. The report computes the studies' statistics from those runs itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cifarlab.studies.ladder import Ladder, load_ladder
from cifarlab.studies.spec import ablation_study, seed_study
from cifarlab.train.loop import train

# 0.2 epochs of the sample (10 steps of 32 images), two evaluation points, one thread:
# a few seconds on a busy 2-core machine.
TINY = {"train.epochs": 0.2, "train.eval_points": 2, "system.threads": 1}


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, sample_data) -> dict[str, Path]:
    """Two real runs on the bundled sample: the report's baseline and final recipes."""
    root = tmp_path_factory.mktemp("report-runs")
    out = {}
    for name in ("seed-baseline", "seed-improved"):
        out[name] = root / name
        train(
            name,
            out_dir=out[name],
            data=sample_data,
            overrides=TINY,
            progress=False,
            log=lambda s: None,
            tensorboard=True,  # read back by test_tensorboard_events.py
        )
    return out


def _copy_run(src: Path, dst: Path, seed: int, accuracy: float, jitter: float) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoint*.pt", ".lock"))
    metrics = json.loads((dst / "metrics.json").read_text())
    metrics["seed"] = seed
    metrics["test_accuracy"] = accuracy / 100
    (dst / "metrics.json").write_text(json.dumps(metrics))
    hist = json.loads((dst / "history.json").read_text())
    hist["val_acc"] = [
        None if v is None else min(1.0, v + jitter * i) for i, v in enumerate(hist["val_acc"])
    ]
    (dst / "history.json").write_text(json.dumps(hist))


def make_ablation_study(root: Path, runs: dict[str, Path], ladder: Ladder | None = None) -> Path:
    """An ablation study of ``ladder`` (default: the built-in seed-report ladder), 2 seeds a
    step, from copies of the two real runs; accuracies near the ladder's reference numbers."""
    ladder = ladder or load_ladder("seed-report")
    spec = ablation_study(ladder, seeds=[0, 1])
    study = root / f"ablation-{ladder.name}"
    for i, step in enumerate(spec.steps):
        src = runs["seed-improved"] if i >= 4 else runs["seed-baseline"]
        for seed in spec.seeds:
            acc = (step.reference or 70.0) - 1.0 + 0.8 * seed  # synthetic, near the report's
            _copy_run(src, study / "runs" / step.name / f"seed{seed}", seed, acc, 0.01 * seed)
    (study / "study.json").write_text(json.dumps(spec.to_json()))
    return study


def make_seed_study(root: Path, runs: dict[str, Path]) -> Path:
    """A 3-seed study of seed-improved, from copies of the real seed-improved run."""
    spec = seed_study("seed-improved", seeds=[0, 1, 2])
    study = root / "seeds-seed-improved"
    values = [77.1, 77.9, 76.8]
    for seed, acc in zip(spec.seeds, values, strict=True):
        _copy_run(
            runs["seed-improved"],
            study / "runs" / spec.steps[0].name / f"seed{seed}",
            seed,
            acc,
            0.02 * seed,
        )
    (study / "study.json").write_text(json.dumps(spec.to_json()))
    return study


@pytest.fixture(scope="session")
def studies(tmp_path_factory, tiny_runs) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report-studies")
    return {
        "ablation": make_ablation_study(root, tiny_runs),
        "seeds": make_seed_study(root, tiny_runs),
    }


@pytest.fixture(scope="session")
def ablation_of(tmp_path_factory, tiny_runs):
    """ablation_of(ladder) -> a study directory of that ladder (as make_ablation_study)."""
    return lambda ladder: make_ablation_study(tmp_path_factory.mktemp("ladder"), tiny_runs, ladder)


@pytest.fixture(scope="session")
def study_report(tmp_path_factory, studies) -> Path:
    """The HTML report of the seed-report ablation and the seed study together."""
    from cifarlab.report.sections import write_report

    out = tmp_path_factory.mktemp("report-html") / "report.html"
    write_report([studies["ablation"], studies["seeds"]], out)
    return out
