"""One ``cifarlab train`` resolves and validates its recipe once (issue 30).

A new run: the command line reads the recipe with its ``--set`` values (it names the run
directory after it) and ``train()`` trains that Recipe as it is. A ``--resume``: the
checkpoint's recipe is read once, and a recipe.toml the run wrote itself is not validated a
second time. ``--resume --allow-change``: the override is applied once, to the checkpoint's
recipe, and only the changed recipe, the one that runs, is validated (the checkpoint's is
built, ``build_recipe``, and compared). A study's or search's job (``jobs.training.train_job``)
resolves its recipe once to find the data and hands that Recipe to ``train()``: one
validation for a new run, and one for a resumed one (the checkpoint's recipe, equal to it, is
not validated again).

The spy replaces the one validation function wherever a cifarlab module holds it, so it
counts every recipe that is built and checked (``recipe_from_dict``, ``load_recipe``).
"""

from __future__ import annotations

import sys

import pytest
from stop_after import stopped_after_checkpoint

import cifarlab.recipe
import cifarlab.recipe.overrides
from cifarlab.cli.main import main
from cifarlab.errors import TrainingError
from cifarlab.jobs.training import train_job
from cifarlab.recipe import load_recipe
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train
from cifarlab.train.start import resolve

# 1,600 training images / 32 = 50 steps per epoch: 0.08 epochs = 4 steps, a point every 2.
TINY = {"train.epochs": 0.08, "train.eval_points": 2, "system.threads": 1}
QUIET = {"progress": False, "log": lambda s: None}
CLI = ["--data-dir", "sample", "--no-progress"]


def _spy(monkeypatch, name: str, calls: list, source=cifarlab.recipe) -> None:
    """Record every call of ``source``'s ``name`` (its arguments), wherever a cifarlab
    module imported it, and let it run."""
    real = getattr(source, name)

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("cifarlab") and (
            getattr(module, name, None) is real
        ):
            monkeypatch.setattr(module, name, spy)


@pytest.fixture
def validated(monkeypatch) -> list:
    """The calls of the validation function from here on."""
    calls: list = []
    _spy(monkeypatch, "validate", calls)
    return calls


def _recipes(calls: list) -> list[dict]:
    """The recipes validated, as dicts, in order."""
    return [args[0].to_dict() for args, _ in calls]


@pytest.fixture
def stopped_run(tmp_path, sample_data, monkeypatch):
    """A seed-baseline run stopped right after its step-2 checkpoint (of 4)."""
    out = tmp_path / "run"
    with stopped_after_checkpoint(monkeypatch, 2):
        train("seed-baseline", out_dir=out, data=sample_data, overrides=TINY, **QUIET)
    assert load_checkpoint(out)["step"] == 2
    return out


def _sets(overrides: dict) -> list[str]:
    return [a for key, value in overrides.items() for a in ("--set", f"{key}={value}")]


def test_a_new_run_resolves_and_validates_its_recipe_once(tmp_path, validated, capsys):
    out = tmp_path / "run"
    argv = ["train", *_sets({**TINY, "optim.lr": 0.002}), *CLI, "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(validated) == 1
    (recipe,) = _recipes(validated)
    assert recipe["optim"]["lr"] == 0.002 and recipe["train"]["epochs"] == 0.08
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 4 and ckpt["recipe"] == recipe  # the Recipe validated is the one trained


def test_a_resume_reads_the_checkpoints_recipe_once(stopped_run, validated, capsys):
    assert main(["train", "--resume", str(stopped_run), *CLI]) == 0, capsys.readouterr().err
    assert len(validated) == 1
    assert load_checkpoint(stopped_run)["step"] == 4


def test_an_allowed_change_is_applied_once_and_only_the_changed_recipe_validated(
    stopped_run, validated, monkeypatch, capsys
):
    overridden: list = []
    _spy(monkeypatch, "set_dotted", overridden, cifarlab.recipe.overrides)
    argv = ["train", "--resume", str(stopped_run), *_sets({"train.epochs": 0.12}), *CLI]
    argv += ["--allow-change", "train.epochs"]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(overridden) == 1  # the one --set, applied to the checkpoint's recipe, once
    # One recipe validated: the changed one it trains (the checkpoint's is only compared).
    assert len(validated) == 1
    (after,) = _recipes(validated)
    assert after["train"]["epochs"] == 0.12
    ckpt = load_checkpoint(stopped_run)
    assert ckpt["step"] == 6 and ckpt["recipe"] == after
    assert ckpt["recipe_changes"][0]["from"] == 0.08


def test_a_set_that_changes_nothing_validates_the_checkpoints_recipe_once(
    stopped_run, validated, capsys
):
    argv = ["train", "--resume", str(stopped_run), *_sets({"train.epochs": 0.08}), *CLI]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(validated) == 1
    assert validated[0][1].get("new_run") is False  # as a stored recipe: its run exists
    assert load_checkpoint(stopped_run)["step"] == 4


def test_a_recipe_given_with_its_own_overrides_is_taken_as_it_is():
    recipe = load_recipe("seed-baseline", {"optim.lr": 0.002})
    assert resolve(recipe, {"optim.lr": 0.002}) is recipe  # resolved with them already
    assert resolve(recipe, {"optim.lr": 2e-3, "seed": recipe.seed}) is recipe
    changed = resolve(recipe, {"optim.lr": 0.003})  # what they change is applied
    assert changed.optim.lr == 0.003 and recipe.optim.lr == 0.002


def test_a_study_or_search_job_resolves_and_validates_its_recipe_once(
    tmp_path, validated, monkeypatch
):
    out, overrides = tmp_path / "run", {**TINY, "optim.lr": 0.002}
    with stopped_after_checkpoint(monkeypatch, 2):
        train_job("seed-baseline", out, overrides, "sample")
    # A new run: the job's one resolution names the data, and train() trains that Recipe.
    assert len(validated) == 1
    assert _recipes(validated)[0] == load_checkpoint(out)["recipe"]
    validated.clear()
    # The study's definition changed under the run: refused as before.
    with pytest.raises(TrainingError, match="would change optim.lr"):
        train_job("seed-baseline", out, {**overrides, "optim.lr": 0.003}, "sample")
    validated.clear()
    # Resumed ("auto"): the job's recipe, once; the checkpoint's equals it and is not validated.
    metrics = train_job("seed-baseline", out, overrides, "sample")
    assert len(validated) == 1
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 4 and ckpt["recipe"]["optim"]["lr"] == 0.002
    assert metrics["test_accuracy"] >= 0
