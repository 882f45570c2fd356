"""Recipes a user can hurt themselves with: run length, bounds, free text (issue 14, item 4)."""

from __future__ import annotations

import pytest

from cifarlab import recipe as recipe_mod
from cifarlab.errors import RecipeError
from cifarlab.recipe import (
    DEFAULT_MAX_STEPS,
    builtin_recipes,
    check_run_length,
    load_recipe,
)


def _refused(overrides: list[str], recipe: str = "seed-baseline") -> str:
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe, overrides)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


# --------------------------------------------------------------------------- run length


def test_absurd_epochs_are_refused_outright():
    msg = _refused(["train.epochs=1e12", "train.max_steps=9223372036854775807"])
    assert msg.startswith("train.epochs: 1e+12 is more than 1,000,000 epochs"), msg


def test_a_run_past_max_steps_is_refused_with_its_step_count_and_the_override():
    # seed-baseline holds out 20%: 40,000 CIFAR-10 images, 1,250 steps of 32 per epoch.
    msg = _refused(["train.epochs=1000"])
    assert msg.startswith("train.epochs: 1000 epochs at batch 32"), msg
    assert "40,000-image training split is 1,250,000 optimizer steps" in msg
    assert "train.max_steps = 1,000,000" in msg and "--set train.max_steps=1250000" in msg
    assert load_recipe("seed-baseline", ["train.epochs=1000", "train.max_steps=1250000"])


def test_every_builtin_fits_the_default_max_steps_with_room():
    for name in builtin_recipes():
        r = load_recipe(name)
        per_epoch, total = recipe_mod.run_steps(r, 50_000)
        assert r.train.max_steps == DEFAULT_MAX_STEPS and total * 10 < DEFAULT_MAX_STEPS, name


def test_check_run_length_refuses_a_batch_larger_than_the_split():
    r = load_recipe("fast94")  # batch 2000
    check_run_length(r, 2000)  # a batch of the whole split is fine
    with pytest.raises(RecipeError) as err:
        check_run_length(r, 1600)  # the bundled sample with 20% held out
    msg = str(err.value)
    assert msg.startswith("train.batch_size: 2,000 images per step is more than the training")
    assert "(1,600)" in msg and "train.batch_size to 1600 or less" in msg and "\n" not in msg


def test_check_run_length_counts_steps_on_the_real_split():
    r = load_recipe("seed-baseline", ["train.epochs=100", "train.batch_size=4"])  # 1M: allowed
    check_run_length(r, 40_000)
    with pytest.raises(RecipeError) as err:
        check_run_length(r, 400_000)  # a bigger image folder than CIFAR-10
    msg = str(err.value)
    assert msg.startswith("train.epochs: 100 epochs at batch 4 on the 400,000-image training")
    assert "10,000,000 optimizer steps" in msg and "--set train.max_steps=10000000" in msg


@pytest.mark.parametrize(
    "override, needle",
    [
        (["train.max_steps=0"], "train.max_steps: must be > 0"),
        (["train.epochs=1" + "0" * 400], "train.epochs: expected a finite number"),
        (["augment.translate=32"], "augment.translate: must be in [0, 31] pixels"),
        (["augment.cutout=33"], "augment.cutout: must be in [0, 32] pixels"),
        (["data.split_seed=-1"], "data.split_seed: must be >= 0"),
        (["system.threads=100000"], "system.threads: must be in [0, 1024]"),
    ],
)
def test_other_bounds_name_the_field(override, needle):
    assert needle in _refused(override)


def test_values_echoed_in_errors_are_cut_short():
    msg = _refused([f"optim.name='{'x' * 100_000}'"])
    assert msg.startswith("optim.name: 'xxx") and "(100,002 characters) is not allowed" in msg


# --------------------------------------------------------------------------- free text


@pytest.mark.parametrize("key, limit", [("description", 2000), ("name", 200)])
def test_free_text_longer_than_its_limit_is_refused(key, limit):
    assert load_recipe("seed-baseline", {key: "x" * limit})
    msg = _refused({key: "é" * (limit + 1)})
    assert msg == f"{key}: {limit + 1:,} characters, more than the limit of {limit:,}; shorten it"
