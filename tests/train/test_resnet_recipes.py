"""The ResNet-20 recipes: the paper's schedule (resnet20) and the 1- and 3-unit budget recipes
(resnet20-u1, resnet20-u3). Each trains in the CPU's fast precision and layout and
checkpoints between its evaluation points, and a run stopped at such a checkpoint resumes
to the same weights as a run that was never stopped."""

from __future__ import annotations

import json

import pytest
import torch
from stop_after import stopped_after_checkpoint

from cifarlab.recipe import builtin_recipes, load_recipe, run_steps
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train

RESNET20 = ["resnet20", "resnet20-u1", "resnet20-u3"]
# The budget unit on the 2-core Zen 4 CPU with native bf16: seed-improved's 25 epochs x 12.5 s;
# ResNet-20 trains there at ~1,000 images/s in bf16 + channels_last.
UNIT_S, RESNET20_IMAGES_PER_S = 25 * 12.5, 1000.0
QUIET = {"progress": False, "log": lambda s: None}


def _split(recipe) -> int:
    """Training images of full CIFAR-10 under the recipe's validation split."""
    return round(50_000 * (1 - recipe.data.val_fraction))


def test_the_resnet20_recipes_are_built_in():
    assert set(RESNET20) <= set(builtin_recipes())


@pytest.mark.parametrize("name", RESNET20)
def test_each_trains_in_the_fast_precision_and_layout_and_checkpoints_between_points(name):
    r = load_recipe(name)
    assert r.model.name == "resnet20" and r.model.options == {}
    assert (r.system.precision, r.system.channels_last) == ("auto", True)
    per_epoch, total = run_steps(r, _split(r))
    every = r.train.checkpoint_every
    # Checkpoints more often than the evaluation points do, and well within the run.
    assert 0 < every < total / r.train.eval_points, (every, total, r.train.eval_points)


def test_resnet20_is_the_paper_schedule():
    r = load_recipe("resnet20")
    per_epoch, total = run_steps(r, _split(r))
    assert _split(r) == 45_000 and r.train.batch_size == 128
    assert abs(total - 64_000) < 100  # 64k iterations
    assert [round(m * total, -3) for m in r.schedule.milestones] == [32_000, 48_000]
    assert (r.schedule.name, r.schedule.gamma, r.schedule.warmup) == ("step", 0.1, 0.0)
    assert (r.optim.name, r.optim.lr, r.optim.momentum, r.optim.nesterov) == (
        "sgd",
        0.1,
        0.9,
        False,
    )
    assert r.optim.weight_decay == 1e-4 and r.train.label_smoothing == 0.0
    assert (r.augment.flip, r.augment.translate, r.augment.pad_mode) == (True, 4, "zeros")


@pytest.mark.parametrize(("name", "units"), [("resnet20-u1", 1), ("resnet20-u3", 3)])
def test_the_budget_recipes_train_within_their_units_on_the_bf16_cpu(name, units):
    r = load_recipe(name)
    per_epoch, total = run_steps(r, _split(r))
    train_s = total * r.train.batch_size / RESNET20_IMAGES_PER_S
    # Training fills most of the budget and leaves at least 5% for start-up and the test pass.
    assert 0.75 * units * UNIT_S < train_s < 0.95 * units * UNIT_S, train_s


@pytest.mark.slow
def test_a_resnet20_u1_run_stopped_between_points_resumes_bit_identically(
    tmp_path, sample_data, monkeypatch
):
    # The bundled sample's 2,000 training images (no validation split) in batches of 32 (not
    # the recipe's 128, to keep the test short) = 63 steps an epoch: 0.1 epochs = 6 steps, one
    # evaluation point (the end), checkpoints every 3 steps.
    overrides = {
        "train.epochs": 0.1,
        "train.batch_size": 32,
        "train.eval_points": 1,
        "train.checkpoint_every": 3,
        "system.threads": 1,
    }
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    kw = dict(data=sample_data, overrides=overrides, **QUIET)
    done = train("resnet20-u1", out_dir=full, **kw)
    with stopped_after_checkpoint(monkeypatch, 3):
        train("resnet20-u1", out_dir=stopped, **kw)
    assert load_checkpoint(stopped)["step"] == 3 and not (stopped / "metrics.json").exists()
    resumed = train("resnet20-u1", out_dir=stopped, resume=True, data=sample_data, **QUIET)
    a, b = load_checkpoint(full)["model"], load_checkpoint(stopped)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for m in (done, resumed):
        for key in ("train_time_s", "wall_time_s", "images_per_s", "provenance"):
            m.pop(key)
    assert done == resumed and done["steps"] == 6
    ha = json.loads((full / "history.json").read_text())
    hb = json.loads((stopped / "history.json").read_text())
    ha.pop("time_s"), hb.pop("time_s")
    assert ha == hb
