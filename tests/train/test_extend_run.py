"""A finished run trains on to a longer train.epochs when the change is allowed, from its last
checkpoint, as if it had been that long from the start wherever the schedule does not depend
on the run's length; unallowed or impossible changes are refused and change nothing."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from cifarlab.errors import TrainingError
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train

# seed-improved (dropout, batch norm, flip + colour jitter, Adam at a constant lr) on the
# bundled sample with 90% held out: 200 training images, 7 steps of 32 per epoch.
SMALL = {
    "data.val_fraction": 0.9,
    "train.eval_points": 2,
    "system.threads": 1,
    "system.precision": "fp32",
}
QUIET = {"progress": False, "log": lambda s: None}


def two_epochs(out, data, **extra):
    return train(
        "seed-improved",
        out_dir=out,
        data=data,
        overrides={**SMALL, "train.epochs": 2, **extra},
        **QUIET,
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, sample_data):
    """A finished 2-epoch run (14 steps), copied fresh for each test that changes it."""
    out = tmp_path_factory.mktemp("extend") / "two-epochs"
    two_epochs(out, sample_data)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def extend(out, data, epochs=3, allow=("train.epochs",), **overrides):
    return train(
        out_dir=out,
        resume=True,
        data=data,
        overrides={"train.epochs": epochs, **overrides},
        allow_change=list(allow),
        **QUIET,
    )


def assert_same_state(a: dict, b: dict) -> None:
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    oa, ob = a["optimizer"], b["optimizer"]
    assert oa["param_groups"] == ob["param_groups"]
    assert oa["state"].keys() == ob["state"].keys()
    for key, slots in oa["state"].items():
        for slot, value in slots.items():
            other = ob["state"][key][slot]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_a_finished_run_extended_by_an_epoch_equals_a_run_that_long_from_the_start(
    run_copy, tmp_path, sample_data
):
    metrics = extend(run_copy, sample_data)
    assert metrics["steps"] == 21
    straight = tmp_path / "three-epochs"
    train(
        "seed-improved",
        out_dir=straight,
        data=sample_data,
        overrides={**SMALL, "train.epochs": 3},
        **QUIET,
    )
    extended, reference = load_checkpoint(run_copy), load_checkpoint(straight)
    assert extended["step"] == reference["step"] == 21
    assert_same_state(extended, reference)  # weights, Adam's moments and steps, the RNG
    assert (
        metrics["test_accuracy"]
        == json.loads((straight / "metrics.json").read_text())["test_accuracy"]
    )
    # The history keeps the points the run recorded at its first length (every 7 steps), then
    # the new length's points after step 14 (every 10 steps, and the last).
    assert json.loads((run_copy / "history.json").read_text())["step"] == [0, 7, 14, 20, 21]
    change = {"at_step": 14, "field": "train.epochs", "from": 2.0, "to": 3}
    assert metrics["recipe_changes"] == [change]
    assert "epochs = 3" in (run_copy / "recipe.toml").read_text()


def test_extending_a_finished_run_without_allow_change_is_refused(run_copy, sample_data):
    before = (run_copy / "metrics.json").read_bytes()
    with pytest.raises(TrainingError) as err:
        extend(run_copy, sample_data, allow=())
    assert "train.epochs" in str(err.value) and "--allow-change" in str(err.value)
    assert load_checkpoint(run_copy)["step"] == 14
    assert (run_copy / "metrics.json").read_bytes() == before


def test_a_finished_run_is_trained_on_only_to_a_longer_end(run_copy, sample_data):
    before = (run_copy / "metrics.json").read_bytes()
    for epochs, allow, overrides in (
        (1, ("train.epochs",), {}),  # shorter than the 14 steps it took
        (2, ("optim.lr",), {"optim.lr": 1e-3}),  # same length: nothing to train
    ):
        with pytest.raises(TrainingError, match="finished at step 14 of 14"):
            extend(run_copy, sample_data, epochs=epochs, allow=allow, **overrides)
    assert load_checkpoint(run_copy)["step"] == 14
    assert (run_copy / "metrics.json").read_bytes() == before


def test_a_decayed_schedule_is_recomputed_for_the_new_length_with_a_warning(
    tmp_path, sample_data, capfd
):
    """Under cosine decay the 2-epoch run ended near lr 0; the 3-epoch schedule is higher at
    step 15, and the run says so in one warning line, records the change and trains on."""
    out = tmp_path / "cosine"
    two_epochs(out, sample_data, **{"schedule.name": "cosine"})
    capfd.readouterr()
    metrics = extend(out, sample_data)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cifarlab: warning: "), err
    assert "cosine schedule is recomputed for 21 steps instead of 14" in err[0]
    # 7e-4 x (1 + cos(pi x 14/21)) / 2: a quarter of the peak again, where it had ended at 1.3%.
    assert "from 8.775e-06 (step 14) to 0.000175 (step 15)" in err[0], err[0]
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [0, 7, 14, 20, 21] and metrics["steps"] == 21
    assert history["lr"][2] < history["lr"][3]  # decayed by step 14, higher at step 20
    assert metrics["recipe_changes"][0]["field"] == "train.epochs"


def test_cli_extends_a_finished_run_with_allow_change(run_copy, capsys):
    from cifarlab.cli.main import main

    base = ["train", "--resume", str(run_copy), "--data-dir", "sample", "--no-progress"]
    assert main([*base, "--set", "train.epochs=3"]) == 2  # not allowed: refused, one line
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "would change train.epochs" in err, err
    assert main([*base, "--set", "train.epochs=3", "--allow-change", "train.epochs"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" not in out and "recipe change at step 14" in out
    assert json.loads((run_copy / "metrics.json").read_text())["steps"] == 21
