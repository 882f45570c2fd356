"""train.keep_best: checkpoint.best.pt is the evaluation point with the highest validation
accuracy, complete and loadable by evaluate and export; refused without a validation split."""

from __future__ import annotations

import json

import pytest
import torch
from stop_after import stopped_after_checkpoint

from cifarlab.cli.main import main
from cifarlab.errors import RecipeError
from cifarlab.recipe import load_recipe
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train

# 50 steps per epoch on the sample; 0.4 epochs = 20 steps, a point every 4.
OVERRIDES = {
    "train.epochs": 0.4,
    "train.eval_points": 5,
    "train.keep_best": True,
    "system.threads": 1,
    "optim.lr": 3e-3,  # the validation accuracy moves from point to point
}
QUIET = {"progress": False, "log": lambda s: None}


@pytest.fixture(scope="module")
def best_run(tmp_path_factory, sample_data):
    out = tmp_path_factory.mktemp("best") / "run"
    metrics = train("seed-baseline", out_dir=out, data=sample_data, overrides=OVERRIDES, **QUIET)
    return out, metrics


def test_the_best_checkpoint_is_the_point_of_highest_validation_accuracy(best_run):
    out, metrics = best_run
    history = json.loads((out / "history.json").read_text())
    trained = [
        (acc, -step) for step, acc in zip(history["step"], history["val_acc"], strict=True) if step
    ]
    best_acc, minus_step = max(trained)  # the earliest of equals
    best = load_checkpoint(out / "checkpoint.best.pt")
    assert best["step"] == -minus_step and best["history"]["val_acc"][-1] == best_acc
    assert metrics["best"] == {
        "file": "checkpoint.best.pt",
        "step": -minus_step,
        "epoch": -minus_step / 50,
        "val_accuracy": best_acc,
    }
    assert "test" not in json.dumps(metrics["best"])  # chosen, and described, by validation
    # Complete: what checkpoint.pt holds, for that step.
    last = load_checkpoint(out / "checkpoint.pt")
    assert set(best) == set(last) and best["recipe"] == last["recipe"]
    assert best["step"] < last["step"]  # here the best point (step 16 of 20) is not the last


def test_the_best_checkpoint_evaluates_and_exports(best_run, tmp_path, capsys):
    out, _ = best_run
    best = out / "checkpoint.best.pt"
    capsys.readouterr()
    assert main(["evaluate", str(best), "--out", str(tmp_path / "eval")]) == 0
    assert "test accuracy: " in capsys.readouterr().out
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert evaluation["step"] == load_checkpoint(best)["step"]
    export = tmp_path / "export"
    assert main(["export", str(best), "--format", "safetensors", "--out", str(export)]) == 0
    assert (export / "model.safetensors").is_file()


def test_keep_best_without_a_validation_split_is_refused_in_one_line():
    with pytest.raises(RecipeError) as err:
        load_recipe("fast94", {"train.keep_best": True})  # fast94 holds out nothing
    message = str(err.value)
    assert message.startswith("train.keep_best: ") and "data.val_fraction" in message, message
    assert "\n" not in message
    assert load_recipe("fast94", {"train.keep_best": True, "data.val_fraction": 0.1})


def test_a_resumed_run_keeps_the_same_best_checkpoint(best_run, tmp_path, sample_data, monkeypatch):
    """Killed after its step-8 checkpoint and resumed, the run ends with the best checkpoint
    of the uninterrupted one, bit for bit."""
    out = tmp_path / "run"
    with stopped_after_checkpoint(monkeypatch, 8):
        train("seed-baseline", out_dir=out, data=sample_data, overrides=OVERRIDES, **QUIET)
    train(out_dir=out, resume=True, data=sample_data, **QUIET)
    resumed = load_checkpoint(out / "checkpoint.best.pt")
    straight = load_checkpoint(best_run[0] / "checkpoint.best.pt")
    assert resumed["step"] == straight["step"]
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
