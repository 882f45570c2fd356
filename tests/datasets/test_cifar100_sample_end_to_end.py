"""CIFAR-100 through the commands a user types, on the bundled CIFAR-100 sample (real
images, the real reader; nothing patched): train records the dataset, its 100 classes and the
training split's own normalisation; evaluate reopens the run's own dataset by itself and
reports top-5; export carries the class names; the coarse labels give 20 classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data.cifar100 import load_cifar100
from cifarlab.data.split import split_train_val
from cifarlab.data.tensors import channel_stats

SHORT = ["--set", "train.epochs=1", "--set", "system.threads=1", "--no-progress"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CIFARLAB_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def fine_run(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("c100")
    res = cli(
        "train",
        "--recipe",
        "cifar100-cpu",
        "--data-dir",
        "sample",
        *SHORT,
        "--out",
        "run",
        cwd=where,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return where / "run"


def test_the_run_records_the_dataset_its_classes_and_its_own_normalisation(fine_run):
    metrics = json.loads((fine_run / "metrics.json").read_text())
    sample = load_cifar100("sample", use_cache=False)
    assert metrics["data"]["dataset"] == "cifar100"
    assert metrics["classes"] == list(sample.classes) and len(metrics["classes"]) == 100
    assert 0.0 <= metrics["test_accuracy"] <= metrics["test_top5_accuracy"] <= 1.0
    # data.normalize = "train": the training split's statistics (cpu90 holds out no validation
    # images, so the split is the whole training set), never the recipe's 0.5s or the test set's
    train_idx, _ = split_train_val(sample.train_labels, 0.0, 42)
    mean, std = channel_stats(sample.train_images, train_idx)
    assert metrics["normalization"] == {"mean": mean, "std": std}
    test_mean, _ = channel_stats(sample.test_images, np.arange(len(sample.test_labels)))
    assert mean != test_mean and mean != [0.5, 0.5, 0.5]


def test_evaluate_reopens_the_runs_own_dataset_and_reports_top5(fine_run):
    res = cli("evaluate", str(fine_run), cwd=fine_run.parent)  # no --data-dir: the run's own
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((fine_run / "metrics.json").read_text())
    assert f"{metrics['test_accuracy'] * 100:.2f}%" in res.stdout
    assert "top-5" in res.stdout


def test_export_carries_the_hundred_class_names(fine_run):
    out = fine_run.parent / "export"
    res = cli(
        "export", str(fine_run), "--format", "safetensors", "--out", str(out), cwd=fine_run.parent
    )
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((out / "model.json").read_text())
    assert meta["classes"] == list(load_cifar100("sample", use_cache=False).classes)


def test_the_coarse_labels_give_twenty_superclasses(tmp_path):
    res = cli(
        "train", "--recipe", "cifar100-cpu", "--data-dir", "sample",
        "--set", "data.dataset=cifar100-coarse", *SHORT, "--out", "run", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["dataset"] == "cifar100-coarse"
    assert len(metrics["classes"]) == 20 and metrics["classes"][0] == "aquatic_mammals"
