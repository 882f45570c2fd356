"""scripts/quickstart.sh, the main job README starts with, run without its set-up step
(CIFARLAB_SKIP_SETUP=1; the set-up is CI's own) and with a tiny training: its first line
names the data, and a machine without the full CIFAR-10 gets the sample with no error line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "quickstart.sh"
TINY = ["--set", "train.epochs=0.05", "--no-progress"]

pytestmark = pytest.mark.skipif(
    not os.access(ROOT / ".venv" / "bin" / "cifarlab", os.X_OK),
    reason="quickstart.sh runs .venv/bin/cifarlab: run scripts/setup.sh first",
)


def _quickstart(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "CIFARLAB_DATA"}
    full_env.update(
        CIFARLAB_SKIP_SETUP="1",
        CIFARLAB_CACHE=str(tmp_path / "cache"),  # a fresh machine: nothing cached
        OUT=str(tmp_path / "out"),
        **env,
    )
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )


@pytest.mark.slow
def test_on_a_machine_without_cifar10_it_says_first_that_it_uses_the_sample(tmp_path):
    res = _quickstart(tmp_path, *TINY)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith("quickstart: data: the bundled sample"), first
    assert "cifarlab data" in first  # how to get the full set
    assert "error" not in res.stdout + res.stderr
    out = tmp_path / "out"
    run = out / "seed-improved-sample"
    assert json.loads((run / "metrics.json").read_text())["data"]["spec"] == "sample"
    assert (run / "evaluation" / "none" / "evaluation.json").is_file()
    assert (out / "data" / "train_examples.png").is_file()
    assert not (tmp_path / "cache").exists()  # nothing downloaded


def test_a_CIFARLAB_DATA_without_a_copy_stops_it_before_anything_runs(tmp_path):
    res = _quickstart(tmp_path, *TINY, CIFARLAB_DATA=str(tmp_path / "nowhere"))
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.startswith("cifarlab: error: CIFAR-10 not found in ")
    assert res.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
