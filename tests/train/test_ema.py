"""Model EMA (train.ema): the average's arithmetic, which weights a run evaluates and saves,
and a resume that is bit-identical to an uninterrupted run with every regulariser on."""

from __future__ import annotations

import json

import pytest
import torch
from stop_after import stopped_after_checkpoint

from cifarlab.data.tensors import prepare_tensors
from cifarlab.evaluate import evaluate, evaluate_model
from cifarlab.predict import load_trained_model
from cifarlab.recipe import load_recipe
from cifarlab.rundir import load_checkpoint
from cifarlab.train.ema import create_ema, ema_decay, update_ema
from cifarlab.train.loop import train

QUIET = {"progress": False, "log": lambda s: None}
# 1,600 training images / 32 = 50 steps per epoch: 0.4 epochs = 20 steps.
EMA_RUN = {
    "train.epochs": 0.4,
    "train.eval_points": 2,
    "train.checkpoint_every": 7,
    "train.ema": 0.9,
    "system.threads": 1,
}
EVERY_REGULARISER = {
    **EMA_RUN,
    "augment.trivial_augment": True,
    "augment.random_erasing": 0.5,
    "augment.mixup": 0.8,
    "augment.cutmix": 1.0,
    "train.label_smoothing": 0.1,
}


def test_the_decay_warms_up_then_holds():
    assert ema_decay(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 100_000) == 0.999
    assert ema_decay(0.5, 1) == 2 / 11 and ema_decay(0.5, 8) == 0.5


def test_float_entries_are_averaged_and_the_others_copied():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = create_ema(model)
    assert not any(p.requires_grad for p in ema.parameters()) and not ema.training
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    model(torch.randn(2, 3, 8, 8))  # batch norm: running stats and num_batches_tracked move
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    update_ema(ema, model, 0.99, step=1000)  # decay 0.99 (past the warm-up)
    now, target = ema.state_dict(), model.state_dict()
    for key, value in now.items():
        if value.is_floating_point():
            want = before[key] + 0.01 * (target[key] - before[key])
            torch.testing.assert_close(value, want, rtol=0, atol=1e-6)
        else:
            assert torch.equal(value, target[key]), key  # num_batches_tracked: copied
    assert int(now["1.num_batches_tracked"]) == 1


def test_a_run_evaluates_and_saves_the_average(tmp_path, sample_data):
    out = tmp_path / "run"
    metrics = train("seed-improved", out_dir=out, data=sample_data, overrides=EMA_RUN, **QUIET)
    ckpt = load_checkpoint(out)
    assert set(ckpt["model"]) == set(ckpt["train_model"])
    assert any(not torch.equal(ckpt["model"][k], ckpt["train_model"][k]) for k in ckpt["model"])
    # evaluate, predict and export (which loads through load_trained_model) use "model"
    assert evaluate(out, data=sample_data, device="cpu")["accuracy"] == metrics["test_accuracy"]
    loaded = load_trained_model(out).model.state_dict()
    assert all(torch.equal(loaded[k], ckpt["model"][k]) for k in loaded)
    # the last validation point is the average's
    recipe = load_recipe("seed-improved", EMA_RUN)
    tensors = prepare_tensors(
        sample_data,
        val_fraction=recipe.data.val_fraction,
        split_seed=recipe.data.split_seed,
        mean=recipe.data.mean,
        std=recipe.data.std,
        device=torch.device("cpu"),
    )
    model = load_trained_model(out).model
    val = evaluate_model(
        model, tensors.val_x, tensors.val_y, tensors.mean, tensors.std, tensors.classes
    )
    history = json.loads((out / "history.json").read_text())
    assert history["val_acc"][-1] == val["accuracy"]


def _stopped_at(step: int, out, data, overrides, monkeypatch) -> None:
    with stopped_after_checkpoint(monkeypatch, step):
        train("seed-improved", out_dir=out, data=data, overrides=overrides, **QUIET)
    assert load_checkpoint(out)["step"] == step


def test_a_resumed_run_with_ema_and_every_regulariser_is_bit_identical(
    tmp_path, sample_data, monkeypatch
):
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    kw = dict(data=sample_data, overrides=EVERY_REGULARISER, **QUIET)
    done = train("seed-improved", out_dir=full, **kw)
    _stopped_at(7, stopped, sample_data, EVERY_REGULARISER, monkeypatch)
    resumed = train("seed-improved", out_dir=stopped, resume=True, data=sample_data, **QUIET)
    a, b = load_checkpoint(full), load_checkpoint(stopped)
    for key in ("model", "train_model"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    for m in (done, resumed):
        for key in ("train_time_s", "wall_time_s", "images_per_s", "provenance"):
            m.pop(key)
    assert done == resumed
    ha = json.loads((full / "history.json").read_text())
    hb = json.loads((stopped / "history.json").read_text())
    ha.pop("time_s"), hb.pop("time_s")
    assert ha == hb


def test_ema_turned_on_at_a_resume_is_averaged_and_saved_from_then_on(
    tmp_path, sample_data, monkeypatch
):
    out = tmp_path / "run"
    plain = {**EMA_RUN, "train.ema": 0.0}
    _stopped_at(7, out, sample_data, plain, monkeypatch)
    at_stop = load_checkpoint(out)["model"]
    assert "train_model" not in load_checkpoint(out)
    train(
        "seed-improved",
        out_dir=out,
        resume=True,
        data=sample_data,
        overrides={"train.ema": 0.9},
        allow_change=["train.ema"],
        **QUIET,
    )
    ckpt = load_checkpoint(out)
    assert ckpt["recipe"]["train"]["ema"] == 0.9 and "train_model" in ckpt
    assert not all(torch.equal(ckpt["model"][k], at_stop[k]) for k in at_stop)
