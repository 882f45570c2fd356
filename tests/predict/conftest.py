"""A real tiny run on the bundled sample, for the predict tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifarlab.train.loop import train


@pytest.fixture(scope="session")
def predict_run(tmp_path_factory, sample_data) -> Path:
    out = tmp_path_factory.mktemp("predict") / "run"
    train(
        "seed-baseline",
        out_dir=out,
        data=sample_data,
        overrides={"train.epochs": 0.2, "train.eval_points": 1, "system.threads": 1},
        progress=False,
        log=lambda s: None,
    )
    return out
