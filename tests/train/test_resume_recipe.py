"""A resumed run keeps its own recipe: changes are refused unless allowed, and recorded."""

from __future__ import annotations

import json

import pytest
from stop_after import stopped_after_checkpoint

from cifarlab.errors import TrainingError
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train

# 1,600 training images / 32 = 50 steps per epoch; 0.2 epochs = 10 steps.
TINY = {"train.epochs": 0.2, "train.eval_points": 2, "system.threads": 1}
QUIET = {"progress": False, "log": lambda s: None}


@pytest.fixture
def stopped_run(tmp_path, sample_data, monkeypatch):
    """A seed-baseline run stopped right after its step-5 checkpoint."""
    out = tmp_path / "run"
    with stopped_after_checkpoint(monkeypatch, 5):
        train("seed-baseline", out_dir=out, data=sample_data, overrides=TINY, **QUIET)
    assert load_checkpoint(out)["step"] == 5
    return out


def test_resume_refuses_a_change_it_was_not_allowed(stopped_run, sample_data):
    before = (stopped_run / "recipe.toml").read_text()
    with pytest.raises(TrainingError) as err:
        train(
            out_dir=stopped_run, resume=True, data=sample_data, overrides={"optim.lr": 0.5}, **QUIET
        )
    assert "optim.lr" in str(err.value) and "--allow-change" in str(err.value)
    assert (stopped_run / "recipe.toml").read_text() == before
    assert load_checkpoint(stopped_run)["step"] == 5  # nothing trained


def test_an_allowed_change_is_applied_and_recorded(stopped_run, sample_data):
    metrics = train(
        out_dir=stopped_run,
        resume=True,
        data=sample_data,
        overrides={"train.epochs": 0.4},
        allow_change=["train.epochs"],
        **QUIET,
    )
    assert metrics["steps"] == 20  # trained on to the new length
    change = {"at_step": 5, "field": "train.epochs", "from": 0.2, "to": 0.4}
    assert metrics["recipe_changes"] == [change]
    assert json.loads((stopped_run / "metrics.json").read_text())["recipe_changes"] == [change]
    assert load_checkpoint(stopped_run)["recipe_changes"] == [change]
    assert "epochs = 0.4" in (stopped_run / "recipe.toml").read_text()


def test_the_same_overrides_on_resume_change_nothing(stopped_run, sample_data):
    """Studies resume with the overrides the run started with: not a change."""
    metrics = train(
        "seed-baseline",
        out_dir=stopped_run,
        resume="auto",
        data=sample_data,
        overrides=TINY,
        **QUIET,
    )
    assert metrics["steps"] == 10 and "recipe_changes" not in metrics


def test_a_hand_edited_recipe_file_is_reported_not_overwritten(stopped_run, sample_data):
    path = stopped_run / "recipe.toml"
    edited = path.read_text().replace("lr = 0.001", "lr = 0.01")
    assert edited != path.read_text()
    path.write_text(edited)
    with pytest.raises(TrainingError) as err:
        train(out_dir=stopped_run, resume=True, data=sample_data, **QUIET)
    assert "edited since the run started (optim.lr: 0.001 -> 0.01)" in str(err.value)
    assert path.read_text() == edited


def test_cli_resume_takes_set_only_with_allow_change(stopped_run, capsys):
    from cifarlab.cli.main import main

    base = ["train", "--resume", str(stopped_run), "--data-dir", "sample", "--no-progress"]
    for extra, expected in (
        (["--recipe", "seed-improved"], "--recipe: --resume"),
        (["--set", "train.epochs=0.4"], "would change train.epochs"),
        (["--allow-change", "train.epochs"], "--allow-change: nothing to change"),
    ):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert load_checkpoint(stopped_run)["step"] == 5
    argv = [*base, "--set", "train.epochs=0.4", "--allow-change", "train.epochs"]
    assert main(argv) == 0
    assert json.loads((stopped_run / "metrics.json").read_text())["steps"] == 20


def test_a_run_on_the_sample_resumes_and_evaluates_on_it_without_searching(
    stopped_run, tmp_path, monkeypatch
):
    """The run recorded that it trained on the bundled sample: neither $CIFARLAB_DATA (here a
    damaged copy, which any search would trip over) nor the network is consulted."""
    from cifarlab.data import download
    from cifarlab.evaluate import evaluate

    bad = tmp_path / "elsewhere" / "cifar-10-batches-py"
    bad.mkdir(parents=True)
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (bad / name).write_bytes(b"not a pickle")
    monkeypatch.setenv("CIFARLAB_DATA", str(bad.parent))
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(download, "OFFICIAL_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    metrics = train(out_dir=stopped_run, resume=True, **QUIET)
    assert metrics["data"]["spec"] == "sample" and metrics["steps"] == 10
    assert evaluate(stopped_run)["data"].startswith("bundled sample")


def test_a_failed_resume_of_a_non_run_creates_nothing(tmp_path, sample_data):
    empty, missing = tmp_path / "empty", tmp_path / "missing"
    empty.mkdir()
    for where in (empty, missing):
        with pytest.raises(TrainingError, match="no checkpoint to resume"):
            train(out_dir=where, resume=True, data=sample_data, **QUIET)
    assert list(empty.iterdir()) == [] and not missing.exists()


def test_the_run_lock_is_removed_when_the_run_ends(tmp_path, sample_data):
    out = tmp_path / "run"
    train("seed-baseline", out_dir=out, data=sample_data, overrides=TINY, **QUIET)
    assert not (out / ".lock").exists()
