"""Recipe bounds a run could not mean (issue 29), and what the progress line says."""

from __future__ import annotations

import pytest

from cifarlab.cli.main import main
from cifarlab.errors import RecipeError
from cifarlab.recipe import load_recipe
from cifarlab.train.loop import train

QUIET = {"progress": False, "log": lambda s: None}


def one_error_line(capsys, argv: list[str]) -> str:
    """The command's one error line; exit status 2 (argparse's errors exit through SystemExit)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cifarlab: error: ") and len(err.splitlines()) == 1, err
    return err


def test_step_milestones_out_of_order_are_refused():
    with pytest.raises(RecipeError, match="schedule.milestones: must be increasing"):
        load_recipe("resnet20", {"schedule.milestones": [0.9, 0.1]})
    with pytest.raises(RecipeError, match="schedule.milestones"):
        load_recipe("resnet20", {"schedule.milestones": [0.5, 1.5]})
    assert load_recipe("resnet20", {"schedule.milestones": [0.3, 0.6]}).schedule.milestones


def test_a_run_of_zero_epochs_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    err = one_error_line(capsys, ["train", "--set", "train.epochs=0", "--out", str(out)])
    assert "train.epochs: must be > 0" in err and not out.exists()


def test_a_run_too_short_for_one_step_is_refused_once_the_split_is_known(tmp_path, sample_data):
    out = tmp_path / "run"
    with pytest.raises(RecipeError, match="no optimizer step; one step is 0.02 epochs"):
        train("seed-baseline", out_dir=out, data=sample_data, overrides={"train.epochs": 0.005})
    assert not out.exists()


def test_sync_bn_is_refused_off_cuda_before_the_data_is_read(tmp_path, capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the refusal")

    monkeypatch.setattr("cifarlab.train.context.load_data_for", no_data)
    out = tmp_path / "run"
    argv = ["train", "--set", "system.sync_bn=true", "--device", "cpu", "--out", str(out)]
    err = one_error_line(capsys, [*argv, "--data-dir", "sample"])
    assert "system.sync_bn: torch's SyncBatchNorm runs on CUDA GPUs only" in err, err
    assert not out.exists()


def test_a_negative_seed_is_refused_by_its_flag_also_on_a_finished_run(
    tmp_path, capsys, sample_run
):
    err = one_error_line(capsys, ["train", "--seed", "-1", "--out", str(tmp_path / "run")])
    assert "--seed: must be >= 0, got -1" in err, err
    finished = sample_run("seed-baseline")
    argv = ["train", "--resume", str(finished), "--seed", "-1", "--allow-change", "seed"]
    err = one_error_line(capsys, [*argv, "--data-dir", "sample"])
    assert "--seed: must be >= 0" in err, err


def test_progress_of_a_fractional_epoch_run_says_steps_epochs_and_the_train_window(
    tmp_path, sample_data
):
    """0.25 epochs of 50 steps is 12 steps: the line says so, not 'Epoch 1/1', and the train
    accuracy says which steps it is the running mean of."""
    lines: list[str] = []
    train(
        "seed-baseline",
        out_dir=tmp_path / "run",
        data=sample_data,
        overrides={"train.epochs": 0.25, "train.eval_points": 2, "system.threads": 1},
        progress=False,
        log=lines.append,
    )
    text = "\n".join(lines)
    assert "Epoch 1/1" not in text
    assert "Step 0/12 (epoch 0 of 0.24)" in text
    assert "Step 6/12 (epoch 0.12 of 0.24)" in text
    assert "Step 12/12 (epoch 0.24 of 0.24)" in text
    assert text.count("Train (running, last 6 steps) -> accuracy: ") == 2, text
