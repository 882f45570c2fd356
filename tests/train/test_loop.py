"""The training loop on the bundled sample: outputs, exact resume, failures kept safe."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cifarlab.errors import TrainingError
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train

TINY = {"train.epochs": 1, "train.eval_points": 5}


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", *args], capture_output=True, text=True, **kwargs
    )


def tiny_run(out: Path, data) -> dict:
    """A 10-step seed-baseline run on the sample, silent."""
    return train(
        "seed-baseline",
        out_dir=out,
        data=data,
        overrides={**TINY, "train.epochs": 0.2},
        progress=False,
        log=lambda s: None,
    )


def test_run_directory_holds_everything(tmp_path, sample_data):
    out = tmp_path / "run"
    m = train(
        "seed-baseline",
        out_dir=out,
        data=sample_data,
        overrides=TINY,
        progress=False,
        log=lambda s: None,
    )
    for name in (
        "checkpoint.pt",
        "checkpoint.json",
        "history.csv",
        "history.json",
        "metrics.json",
        "recipe.toml",
        "loss.png",
        "accuracy.png",
        "confusion.png",
    ):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [
        0,
        10,
        20,
        30,
        40,
        50,
    ]  # 1,600 train images / 32 = 50 steps, 5 points
    assert m["data"] == {
        "dataset": "cifar10",
        "dataset_spec": {
            "name": "cifar10",
            "image_size": 32,
            "split_seed": 42,
            "test_fraction": 0.2,
        },
        "source": sample_data.source,
        "spec": "sample",  # a run on the bundled sample reopens it without searching
        "fingerprint": m["data"]["fingerprint"],
        "n_train": 1600,
        "n_val": 400,
        "n_test": 500,
    }
    assert m["test_count"] == 500 and 0.0 <= m["test_accuracy"] <= 1.0
    assert sum(map(sum, m["confusion"])) == 500
    assert set(m["per_class_accuracy"]) == set(sample_data.classes)
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 50 and ckpt["recipe"]["name"] == "seed-baseline"
    assert {"torch", "numpy", "python"} <= set(ckpt["rng"])
    assert ckpt["versions"]["torch"] == torch.__version__
    summary = json.loads((out / "checkpoint.json").read_text())
    assert summary["step"] == 50 and summary["recipe"] == "seed-baseline"


def test_same_seed_same_weights_other_seed_differs(tmp_path, sample_data):
    kw = dict(data=sample_data, progress=False, log=lambda s: None)
    train("seed-improved", out_dir=tmp_path / "a", overrides={**TINY, "train.epochs": 0.4}, **kw)
    train("seed-improved", out_dir=tmp_path / "b", overrides={**TINY, "train.epochs": 0.4}, **kw)
    train(
        "seed-improved",
        out_dir=tmp_path / "c",
        overrides={**TINY, "train.epochs": 0.4, "seed": 1},
        **kw,
    )
    a, b, c = (load_checkpoint(tmp_path / x)["model"] for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_the_recipes_threads_hold_while_it_trains_and_the_caller_gets_its_own_back(
    tmp_path, sample_data
):
    # system.threads = 1 once left the whole process at 1 thread: a later test computed a
    # reference in it and no longer matched a run made in 2.
    seen: list[int] = []
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        train(
            "seed-baseline",
            out_dir=tmp_path / "run",
            data=sample_data,
            overrides={**TINY, "system.threads": 1},
            progress=False,
            log=lambda s: None,
            on_eval=lambda step, total, history: seen.append(torch.get_num_threads()),
        )
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
    assert after == 3


def test_existing_run_is_refused_not_overwritten(tmp_path, sample_data):
    out = tmp_path / "run"
    tiny_run(out, sample_data)
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(TrainingError, match="already holds a run"):
        train("seed-baseline", out_dir=out, data=sample_data, progress=False, log=lambda s: None)
    assert (out / "metrics.json").read_bytes() == before


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, sample_data):
    out = tmp_path / "run"
    # SGD at lr 1e6 diverges within a few steps; checkpoints every step until then.
    with pytest.raises(TrainingError, match="non-finite") as err:
        train(
            "seed-baseline",
            out_dir=out,
            data=sample_data,
            progress=False,
            log=lambda s: None,
            overrides={
                "optim.name": "sgd",
                "optim.lr": 1e6,
                "train.checkpoint_every": 1,
                "train.epochs": 1,
            },
        )
    ckpt = load_checkpoint(out)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert f"step {ckpt['step']}" in str(err.value)
    assert not (out / "metrics.json").exists()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run)["model"]


def _metrics_without_times(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    for key in ("train_time_s", "wall_time_s", "images_per_s", "provenance"):
        m.pop(key)
    return m


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path):
    args = [
        "--recipe",
        "seed-improved",
        "--data-dir",
        "sample",
        "--no-progress",
        "--set",
        "train.epochs=6",
        "--set",
        "train.checkpoint_every=7",
        "--set",
        "train.eval_points=6",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full = tmp_path / "full"
    assert cli("train", *args, "--out", str(full), env=env).returncode == 0

    killed = tmp_path / "killed"
    target = random.Random(os.getpid()).randint(20, 200)  # of 300 steps
    proc = subprocess.Popen(
        [sys.executable, "-m", "cifarlab", "train", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        summary = killed / "checkpoint.json"
        try:
            if json.loads(summary.read_text())["step"] >= target:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"
    assert (killed / "recipe.toml").is_file()  # written at the start, not only at the end
    step_at_kill = load_checkpoint(killed)["step"]
    assert 0 < step_at_kill < 300

    res = cli("train", "--resume", str(killed), "--data-dir", "sample", "--no-progress", env=env)
    assert res.returncode == 0, res.stderr
    assert f"at step {step_at_kill}" in res.stdout
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics_without_times(full) == _metrics_without_times(killed)
    ha = json.loads((full / "history.json").read_text())
    hb = json.loads((killed / "history.json").read_text())
    ha.pop("time_s"), hb.pop("time_s")
    assert ha == hb


def test_cli_bad_recipe_value_is_one_line_exit_2(tmp_path):
    res = cli(
        "train", "--recipe", "seed-baseline", "--set", "optim.lr=-1", "--out", str(tmp_path / "r")
    )
    assert res.returncode == 2
    assert res.stderr.strip() == "cifarlab: error: optim.lr: must be > 0, got -1.0"
    assert not (tmp_path / "r").exists()


def test_cli_evaluate_and_models(tmp_path, sample_data):
    out = tmp_path / "run"
    tiny_run(out, sample_data)
    res = cli("evaluate", str(out), "--data-dir", "sample", "--json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["accuracy"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["test_accuracy"]
    )
    assert (out / "confusion.png").is_file()
    res = cli("models")
    assert res.returncode == 0 and "seednet-improved" in res.stdout


def test_evaluate_follows_the_recipes_auto_data_rule(tmp_path, sample_data, monkeypatch):
    """A run trained with data.source = "auto" on the sample evaluates without --data-dir."""
    from cifarlab.data import download
    from cifarlab.evaluate import evaluate

    out = tmp_path / "run"
    tiny_run(out, sample_data)
    monkeypatch.delenv("CIFARLAB_DATA", raising=False)
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(download, "OFFICIAL_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    result = evaluate(out)
    assert result["data"].startswith("bundled sample")
    assert result["count"] == 500
    stored = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    assert result["accuracy"] == pytest.approx(stored)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_before_or_after_the_subcommand(tmp_path, where):
    args = ["train", "--set", "optim.lr=-1", "--out", str(tmp_path / "r")]
    res = cli(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert res.returncode != 0
    assert "Traceback" in res.stderr and "optim.lr: must be > 0" in res.stderr
