"""`cifarlab bench`: throughput rows and the time-to-accuracy mode, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_throughput_rows_per_model_and_config():
    proc = _cli(
        "--models", "resnet20,seednet", "--configs", "fp32,fp32+cl", "--batch-size", "8",
        "--steps", "1", "--warmup", "0", "--rounds", "1", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["model"] for r in rows] == ["resnet20", "seednet"]
    for r in rows:
        assert set(r["configs"]) == {"fp32", "fp32+cl"}
        assert all(v["train_img_s"] > 0 and v["infer_img_s"] > 0 for v in r["configs"].values())


def test_unknown_config_and_model_are_one_line_errors():
    for args in (("--configs", "fp64"), ("--models", "no-such-net")):
        proc = _cli(*args)
        assert proc.returncode == 2
        assert proc.stderr.startswith("cifarlab: error:") and proc.stderr.count("\n") == 1


def test_time_to_accuracy_trains_and_reports_the_target(tmp_path):
    out = tmp_path / "tta"
    proc = _cli(
        "--recipe", "fast94", "--target", "0.12", "--data-dir", "sample", "--out", str(out),
        "--set", "model.options.widths=[16, 32, 32]", "--set", "train.batch_size=500",
        "--set", "train.epochs=1", "--set", "train.eval_points=1", "--set", "eval.tta=flip", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["recipe"] == "fast94" and result["target"] == 0.12
    assert result["reached"] == (result["test_accuracy_tta"] >= 0.12)
    assert result["train_time_s"] > 0 and result["wall_time_s"] >= result["train_time_s"]
    assert (out / "metrics.json").is_file()
