"""A real tiny run on the bundled sample, exported once to all three formats by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cifarlab.train.loop import train


@pytest.fixture(scope="session")
def export_run(tmp_path_factory, sample_data) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    # The final recipe's model: batch norm and dropout must export in eval mode.
    train(
        "seed-improved",
        out_dir=out,
        data=sample_data,
        overrides={"train.epochs": 0.2, "train.eval_points": 1, "system.threads": 1},
        progress=False,
        log=lambda s: None,
    )
    return out


@pytest.fixture(scope="session")
def exported(export_run) -> Path:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "cifarlab",
            "export",
            str(export_run),
            "--format",
            "onnx",
            "--format",
            "torchscript",
            "--format",
            "safetensors",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # the exporter's own chatter is kept quiet
    return export_run / "export"
