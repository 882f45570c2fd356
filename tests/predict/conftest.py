"""A real tiny run on the bundled sample, for the predict tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def predict_run(sample_run) -> Path:
    return sample_run("seed-baseline")
