"""A real tiny run on the bundled sample, exported once to all three formats by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def export_run(sample_run) -> Path:
    # The final recipe's model: batch norm and dropout must export in eval mode.
    return sample_run("seed-improved")


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
