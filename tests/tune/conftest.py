"""A small search on the bundled sample, run once per session and shared (copied) by tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tunehelpers import SPACE, TINY, quiet


@pytest.fixture(scope="session")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "lr-dropout.toml"
    path.write_text(SPACE, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_spec(space_file):
    from cifarlab.tune.search import make_spec

    def make(**kwargs):
        return make_spec("seed-baseline", str(space_file), dict(TINY), pruner="none", **kwargs)

    return make


@pytest.fixture(scope="session")
def searched(tmp_path_factory, tiny_spec) -> Path:
    """Three complete trials of the tiny search (pruner none), in this process; copy before
    changing it (``copy_search``)."""
    from cifarlab.tune.search import run_tune

    out = tmp_path_factory.mktemp("searched") / "tune"
    threads = torch.get_num_threads()
    try:
        run_tune(tiny_spec(), out, trials=3, data_dir="sample", log=quiet)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def copy_search(searched, tmp_path):
    def copy() -> Path:
        out = tmp_path / "tune"
        shutil.copytree(searched, out)
        return out

    return copy
