"""Data-parallel training on torch.distributed (gloo, CPU) with the bundled sample.

Each test starts real torchrun workers, so they are kept to 20-100 steps of seednet.
The equality tests use SGD: Adam normalises every gradient element by its own
magnitude, so float-rounding noise (a different summation order, a different thread
count) in near-zero gradients becomes lr-sized steps; SGD keeps the noise at float level.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cifarlab.evaluate import evaluate
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train

# seednet (no batch norm, no dropout, no augmentation), 20 steps of 32, SGD.
RECIPE = "seed-baseline"
SETTINGS = {
    "train.epochs": 0.4,  # 1,600 / 32 = 50 steps per epoch -> 20 steps
    "train.eval_points": 5,
    "optim.name": "sgd",
    # lr 0.02, not 0.05: at 0.05 float rounding grows over these 20 steps into 6.6e-4 between
    # one process and two on an AVX-512 CPU (Zen 4, 2026-11-30), more than TOL, while at 0.02
    # they agree to 1e-8 there. A real fault stays far outside TOL: lr 0.04 instead of 0.02
    # (what summing the ranks' gradients instead of averaging them would do) moves the
    # weights by 0.03.
    "optim.lr": 0.02,
    # NCHW: with channels_last, one process's own NCHW and channels_last runs already differ by
    # 6.6e-4 after these 20 steps at lr 0.05 (float rounding), more than TOL, while the
    # ranks' result matches one process within TOL when both use the same layout.
    "system.channels_last": False,
}
SET_ARGS = [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={json.dumps(v)}")]
TOL = 1e-4


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        **kwargs,
    )


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path, sample_data):
    single = tmp_path / "single"
    train(
        RECIPE,
        out_dir=single,
        data=sample_data,
        overrides=SETTINGS,
        progress=False,
        log=lambda s: None,
    )
    ddp = tmp_path / "ddp"
    res = cli(
        "train",
        "--nproc",
        "2",
        "--recipe",
        RECIPE,
        "--data-dir",
        "sample",
        "--no-progress",
        *SET_ARGS,
        "--out",
        str(ddp),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # Only rank 0 prints.
    assert res.stdout.count("Test -> accuracy") == 1
    assert res.stdout.count(f"run directory: {ddp}") == 1

    a, b = load_checkpoint(single), load_checkpoint(ddp)
    assert a["step"] == b["step"] == 20
    assert max_diff(a["model"], b["model"]) <= TOL  # same format: no "module." prefixes either
    assert b["optimizer"].keys() == a["optimizer"].keys()

    ha = json.loads((single / "history.json").read_text())
    hb = json.loads((ddp / "history.json").read_text())
    assert ha["step"] == hb["step"] == [0, 4, 8, 12, 16, 20]
    # Validation sums are reduced over both ranks' shards: the whole 400-image split.
    assert hb["val_loss"] == pytest.approx(ha["val_loss"], abs=TOL)
    assert hb["train_loss"][1:] == pytest.approx(ha["train_loss"][1:], abs=TOL)
    ma = json.loads((single / "metrics.json").read_text())
    mb = json.loads((ddp / "metrics.json").read_text())
    assert mb["test_count"] == 500 and sum(map(sum, mb["confusion"])) == 500
    assert mb["test_loss"] == pytest.approx(ma["test_loss"], abs=TOL)
    # Calibration sums are reduced the same way, over both shards. ECE gets more room: the
    # weights differ by up to TOL, which can move an image across a bin edge (~1/500 each).
    for key in ("test_brier", "test_nll", "val_brier", "val_nll"):
        assert mb[key] == pytest.approx(ma[key], abs=TOL), key
    for key in ("test_ece", "val_ece"):
        assert mb[key] == pytest.approx(ma[key], abs=5e-3), key
    assert sum(mb["test_reliability"]["count"]) == 500
    assert mb["provenance"]["world_size"] == 2


@pytest.mark.slow
def test_two_nodes_on_localhost_then_resume_in_one_process(tmp_path, sample_data):
    run = tmp_path / "run"
    other = tmp_path / "node1-out"  # node 1 is told another --out: it must write nothing
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    common = [sys.executable, "-m", "cifarlab", "train", "--nproc", "1", "--nnodes", "2"]
    common += ["--rdzv-endpoint", endpoint, "--recipe", RECIPE, "--data-dir", "sample"]
    common += ["--no-progress", *SET_ARGS]
    nodes = [
        subprocess.Popen(
            [*common, "--node-rank", str(rank), "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank, out in ((0, run), (1, other))
    ]
    outputs = [p.communicate(timeout=300) for p in nodes]
    for p, (_, err) in zip(nodes, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "Test -> accuracy" in outputs[0][0] and "Test -> accuracy" not in outputs[1][0]
    assert not other.exists()
    final = load_checkpoint(run)
    assert final["step"] == 20

    # The step-16 checkpoint of the two-node run resumes in a plain process (no torchrun)
    # and ends where the two-node run ended.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(run / "checkpoint.prev.pt", resumed / "checkpoint.pt")
    assert load_checkpoint(resumed)["step"] == 16
    lines: list[str] = []
    train(out_dir=resumed, resume=True, data=sample_data, progress=False, log=lines.append)
    assert any("at step 16" in line for line in lines)
    assert max_diff(load_checkpoint(resumed)["model"], final["model"]) <= TOL
    # ... and evaluates without torch.distributed.
    result = evaluate(run, data=sample_data, device="cpu")
    assert result["count"] == 500
    assert result["accuracy"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["test_accuracy"]
    )


def _worker_pid(launcher_pid: int, rank: int) -> int | None:
    """The pid of the torchrun worker with RANK=rank among the launcher's children (Linux)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != launcher_pid:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.slow
def test_killed_rank_stops_the_job_and_resume_completes_it(tmp_path):
    run = tmp_path / "run"
    args = ["--recipe", RECIPE, "--data-dir", "sample", "--no-progress", *SET_ARGS]
    args += ["--set", "train.epochs=2", "--set", "train.checkpoint_every=5"]  # 100 steps
    launcher = subprocess.Popen(
        [sys.executable, "-m", "cifarlab", "train", "--nproc", "2", *args, "--out", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and launcher.poll() is None:
            try:
                if json.loads((run / "checkpoint.json").read_text())["step"] >= 10:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        victim = _worker_pid(launcher.pid, rank=1)
        assert victim is not None, "rank 1 not found (or the run ended before the kill)"
        os.kill(victim, signal.SIGKILL)
        # Bounded: the job must stop by itself, not hang in a collective.
        _, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode != 0
    assert "rank 1" in err and "SIGKILL" in err, err[-3000:]
    assert f"cifarlab train --resume {run}" in err
    assert not (run / "metrics.json").exists(), "the run finished before the kill"
    step = load_checkpoint(run)["step"]
    assert 10 <= step < 100

    res = cli(
        "train", "--resume", str(run), "--nproc", "2", "--data-dir", "sample", "--no-progress"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"at step {step}" in res.stdout
    assert load_checkpoint(run)["step"] == 100
    history = json.loads((run / "history.json").read_text())
    assert history["step"][-1] == 100 and json.loads((run / "metrics.json").read_text())
