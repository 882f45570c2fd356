"""Fixtures for the report tests: two real tiny runs, and study directories built from them.

The study directories follow the study contract (study.json, runs/<step>/seed<k>/,
summary.json) but are assembled here from copies of two real runs, so these tests
do not wait on `cifarlab ablate/seeds`. The copies get synthetic per-seed test
accuracies (recorded in their metrics.json and summary.json alike), so the tables
and charts have something to show; every other file is the real run's.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

from cifarlab.report.sections import SEED_REPORT_ACCURACY
from cifarlab.train.loop import train

# 0.2 epochs of the sample (10 steps of 32 images), two evaluation points, one thread:
# a few seconds on a busy 2-core machine.
TINY = {"train.epochs": 0.2, "train.eval_points": 2, "system.threads": 1}
T95 = {2: 12.706, 3: 4.303}  # Student t quantiles (0.975) for n = 2, 3 seeds

ABLATION_STEPS = [
    ("baseline", {}),
    ("weight-decay", {"optim.weight_decay": 1e-5}),
    ("dropout", {"model.options.dropout": 0.5, "train.epochs": 25}),
    ("augment", {"augment.flip": True}),
    ("no-bias", {"model.options.bias": False}),
    ("batch-norm", {"model.options.batch_norm": True, "optim.lr": 7e-4}),
]


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


def _row(step: str, values: list[float], prev: list[float] | None) -> dict:
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values)
    half = T95[n] * std / math.sqrt(n)
    row = {
        "step": step,
        "n": n,
        "mean": mean,
        "std": std,
        "ci95": [mean - half, mean + half],
        "min": min(values),
        "max": max(values),
        "values": values,
        "diff_prev": None,
        "diff_prev_ci95": None,
    }
    if prev is not None:
        d = mean - statistics.fmean(prev)
        half_d = T95[n] * math.sqrt(std**2 / n + statistics.stdev(prev) ** 2 / len(prev))
        row.update(diff_prev=d, diff_prev_ci95=[d - half_d, d + half_d])
    return row


def make_ablation_study(root: Path, runs: dict[str, Path]) -> Path:
    """A seed-report ladder study, 6 steps x 2 seeds, from copies of the two real runs."""
    study = root / "ablation-seed-report"
    rows, prev = [], None
    for i, (step, _changes) in enumerate(ABLATION_STEPS):
        src = runs["seed-improved"] if i >= 4 else runs["seed-baseline"]
        values = []
        for seed in (0, 1):
            acc = SEED_REPORT_ACCURACY[step] - 1.0 + 0.8 * seed  # synthetic, near the report's
            values.append(acc)
            _copy_run(src, study / "runs" / step / f"seed{seed}", seed, acc, 0.01 * seed)
        rows.append(_row(step, values, prev))
        prev = values
    (study / "study.json").write_text(
        json.dumps(
            {
                "kind": "ablation",
                "name": "seed-report",
                "ladder": "seed-report",
                "recipe": "seed-baseline",
                "seeds": [0, 1],
                "steps": [{"name": n, "changes": c} for n, c in ABLATION_STEPS],
            }
        )
    )
    (study / "summary.json").write_text(json.dumps({"rows": rows}))
    return study


def make_seed_study(root: Path, runs: dict[str, Path]) -> Path:
    """A 3-seed study of seed-improved, from copies of the real seed-improved run."""
    study = root / "seeds-seed-improved"
    values = [77.1, 77.9, 76.8]
    for seed, acc in enumerate(values):
        _copy_run(
            runs["seed-improved"],
            study / "runs" / "seed-improved" / f"seed{seed}",
            seed,
            acc,
            0.02 * seed,
        )
    (study / "study.json").write_text(
        json.dumps(
            {
                "kind": "seeds",
                "name": "seed-improved",
                "ladder": None,
                "recipe": "seed-improved",
                "seeds": [0, 1, 2],
                "steps": [{"name": "seed-improved", "changes": {}}],
            }
        )
    )
    (study / "summary.json").write_text(json.dumps({"rows": [_row("seed-improved", values, None)]}))
    return study


@pytest.fixture(scope="session")
def studies(tmp_path_factory, tiny_runs) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report-studies")
    return {
        "ablation": make_ablation_study(root, tiny_runs),
        "seeds": make_seed_study(root, tiny_runs),
    }


@pytest.fixture(scope="session")
def study_report(tmp_path_factory, studies) -> Path:
    """The HTML report of the seed-report ablation and the seed study together."""
    from cifarlab.report.sections import write_report

    out = tmp_path_factory.mktemp("report-html") / "report.html"
    write_report([studies["ablation"], studies["seeds"]], out)
    return out
