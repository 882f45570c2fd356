"""train()'s evaluation-point hook: what a search reports to its pruner, and how it stops a run."""

from __future__ import annotations

import pytest
import torch

from cifarlab.rundir import RunDir, load_checkpoint
from cifarlab.train.loop import train

# 1,600 training images / 32 = 50 steps per epoch: 0.2 epochs = 10 steps, evaluated at 5 and 10.
TINY = {"train.epochs": 0.2, "train.eval_points": 2, "system.threads": 1}


def run(out, data, **kwargs) -> dict:
    return train(
        "seed-baseline", out_dir=out, data=data, progress=False, log=lambda s: None, **kwargs
    )


def test_on_eval_sees_every_evaluation_point_after_its_checkpoint(tmp_path, sample_data):
    out = tmp_path / "run"
    seen = []

    def hook(step, total, history):
        seen.append((step, total, history["step"][-1], load_checkpoint(out)["step"]))
        assert 0 <= history["val_acc"][-1] <= 1

    metrics = run(out, sample_data, overrides=TINY, on_eval=hook)
    # Step 0 (before training) is recorded but not reported; the checkpoint is already there.
    assert seen == [(5, 10, 5, 5), (10, 10, 10, 10)]
    assert metrics["val_accuracy"] == load_checkpoint(out)["history"]["val_acc"][-1]


def test_a_hook_that_raises_stops_the_run_resumable_and_unlocked(tmp_path, sample_data):
    class Stop(Exception):
        pass

    def stop_at_5(step, total, history):
        if step == 5:
            raise Stop

    out = tmp_path / "stopped"
    with pytest.raises(Stop):
        run(out, sample_data, overrides=TINY, on_eval=stop_at_5)
    assert not (out / ".lock").exists()
    assert not RunDir(out).is_finished()
    assert load_checkpoint(out)["step"] == 5

    resumed = run(out, sample_data, resume=True)
    whole = run(tmp_path / "whole", sample_data, overrides=TINY)
    assert resumed["val_accuracy"] == whole["val_accuracy"]
    a, b = load_checkpoint(out)["model"], load_checkpoint(tmp_path / "whole")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
