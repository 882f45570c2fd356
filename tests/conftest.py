"""Shared test fixtures.

Tests never touch the user's real cache: CIFARLAB_CACHE points at a temporary
folder for the whole session. The full CIFAR-10 is used only by tests marked
``full_data``, and only when CIFARLAB_DATA names a complete copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_report_header(config) -> str | None:
    """Say when the slow tests are left out, and how to run them."""
    if config.getoption("markexpr") == "not slow":
        return (
            "tests marked slow are left out (pyproject.toml's addopts): "
            "scripts/test.sh or pytest -m 'slow or not slow' runs them"
        )
    return None


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cifarlab-cache")
    old = os.environ.get("CIFARLAB_CACHE")
    os.environ["CIFARLAB_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("CIFARLAB_CACHE", None)
    else:
        os.environ["CIFARLAB_CACHE"] = old


def full_data_dir() -> Path | None:
    """The complete CIFAR-10 named by CIFARLAB_DATA, or None."""
    root = os.environ.get("CIFARLAB_DATA")
    if not root:
        return None
    root = Path(root)
    for cand in (root, root / "cifar-10-batches-py"):
        if (
            all((cand / f"data_batch_{i}").is_file() for i in range(1, 6))
            and (cand / "test_batch").is_file()
        ):
            return cand
    return None


@pytest.fixture(scope="session")
def full_data():
    path = full_data_dir()
    if path is None:
        pytest.skip("full CIFAR-10 not found: set CIFARLAB_DATA to run the full-data tests")
    from cifarlab.data import load_cifar10

    return load_cifar10(path)


@pytest.fixture(scope="session")
def sample_data():
    from cifarlab.data import load_cifar10

    return load_cifar10("sample")


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, sample_data):
    """sample_run(recipe) -> a real 0.2-epoch run of that recipe on the bundled sample,
    trained once per session and shared by the tests that need a finished run."""
    from cifarlab.train.loop import train

    runs: dict[str, Path] = {}

    def get(recipe: str) -> Path:
        if recipe not in runs:
            out = tmp_path_factory.mktemp(f"run-{recipe}") / "run"
            train(
                recipe,
                out_dir=out,
                data=sample_data,
                overrides={"train.epochs": 0.2, "train.eval_points": 1, "system.threads": 1},
                progress=False,
                log=lambda s: None,
            )
            runs[recipe] = out
        return runs[recipe]

    return get


@pytest.fixture(scope="session")
def hundred_data(sample_data):
    """The bundled sample relabelled into 100 classes (tests/hundred_classes.py)."""
    from hundred_classes import hundred_classes

    return hundred_classes(sample_data)


@pytest.fixture(scope="session")
def hundred_run(tmp_path_factory, hundred_data) -> Path:
    """A real 0.2-epoch seed-baseline run on ``hundred_data``: a 100-class run, trained once
    per session."""
    from cifarlab.train.loop import train

    out = tmp_path_factory.mktemp("run-hundred") / "run"
    train(
        "seed-baseline",
        out_dir=out,
        data=hundred_data,
        overrides={
            "data.dataset": hundred_data.dataset,  # the recipe names the data it is given
            "train.epochs": 0.2,
            "train.eval_points": 1,
            "system.threads": 1,
        },
        progress=False,
        log=lambda s: None,
    )
    return out
