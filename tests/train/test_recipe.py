"""Recipes: built-ins resolve to the report's numbers; bad keys and values fail by name."""

from __future__ import annotations

import pytest

from cifarlab.errors import RecipeError
from cifarlab.recipe import ScheduleConfig, builtin_recipes, load_recipe, recipe_from_dict
from cifarlab.train.optim import lr_at


def test_builtins_hold_the_report_numbers():
    base = load_recipe("seed-baseline")
    assert (base.train.batch_size, base.train.epochs, base.optim.name, base.optim.lr) == (
        32,
        10,
        "adam",
        1e-3,
    )
    assert (base.data.val_fraction, base.data.mean, base.data.std, base.train.eval_points) == (
        0.2,
        [0.5] * 3,
        [0.5] * 3,
        25,
    )
    imp = load_recipe("seed-improved")
    assert imp.model.name == "seednet-improved"
    assert (imp.train.epochs, imp.optim.lr, imp.optim.weight_decay) == (25, 7e-4, 1e-5)
    assert (
        imp.augment.flip
        and (imp.augment.brightness, imp.augment.contrast, imp.augment.saturation) == (0.2,) * 3
    )
    assert imp.train.batch_size == 32  # inherited from the baseline


def test_every_builtin_loads():
    for name in builtin_recipes():
        assert load_recipe(name).name == name


def test_overrides_parse_as_toml():
    r = load_recipe(
        "seed-baseline",
        [
            "optim.lr=7e-4",
            "augment.flip=true",
            "data.mean=[0.4, 0.4, 0.4]",
            "model.options.dropout=0.5",
            "model.name=seednet",
        ],
    )
    assert r.optim.lr == 7e-4 and r.augment.flip is True and r.data.mean == [0.4] * 3
    assert r.model.options == {"dropout": 0.5}


def test_resolved_recipe_round_trips_through_toml(tmp_path):
    r = load_recipe("seed-improved", ["model.options.dropout=0.3"])
    path = tmp_path / "r.toml"
    path.write_text(r.to_toml())
    assert load_recipe(path) == r


@pytest.mark.parametrize(
    "override, needle",
    [
        (["optim.lrr=1"], "optim: unknown key 'lrr'"),
        (["bogus=1"], "recipe: unknown key 'bogus'"),
        (["optim.lr=-1"], "optim.lr: must be > 0"),
        (["optim.lr=0"], "optim.lr: must be > 0"),
        (["train.batch_size=0"], "train.batch_size: must be > 0"),
        (["train.epochs=-1"], "train.epochs: must be > 0"),
        (["train.batch_size=2.5"], "train.batch_size: expected an integer"),
        (["optim.lr=fast"], "optim.lr: expected a number"),
        (["optim.name=lion"], "optim.name: 'lion' is not allowed; choose one of sgd, adam, adamw"),
        (["model.name=vgg"], "model.name: 'vgg' is not allowed"),
        (["augment.flip=1"], "augment.flip: expected true or false"),
        (["data.val_fraction=1.0"], "data.val_fraction: must be in [0, 1)"),
        (["optim=3"], "optim: expected a table"),
        (["noequals"], "expected key=value"),
        (["optim.bias_lr=0"], "optim.bias_lr: must be > 0"),
        (["optim.head_lr=-1"], "optim.head_lr: must be > 0"),
        (["optim.head_lr=fast"], "optim.head_lr: expected a number"),
        (["optim.bias_momentum=1.0"], "optim.bias_momentum: must be in [0, 1)"),
        (["optim.weight_norm=1"], "optim.weight_norm: expected true or false"),
        (["augment.trivial_augment=1"], "augment.trivial_augment: expected true or false"),
        (["augment.random_erasing=1.5"], "augment.random_erasing: must be a probability in [0, 1]"),
        (["augment.random_erasing=-0.1"], "augment.random_erasing: must be a probability"),
        (["augment.random_erasing=yes"], "augment.random_erasing: expected a number"),
        (["augment.mixup=-1"], "augment.mixup: must be 0 (off) or a Beta alpha in [0.01, 100]"),
        (["augment.mixup=0.001"], "augment.mixup: must be 0 (off) or a Beta alpha"),
        (["augment.cutmix=1000"], "augment.cutmix: must be 0 (off) or a Beta alpha in [0.01, 100]"),
        (["augment.cutmix=true"], "augment.cutmix: expected a number"),
        (["train.ema=1.0"], "train.ema: must be a decay in [0, 1)"),
        (["train.ema=-0.5"], "train.ema: must be a decay in [0, 1)"),
        (["train.ema=nan"], "train.ema: expected a finite number"),
    ],
)
def test_bad_values_name_the_field(override, needle):
    with pytest.raises(RecipeError) as err:
        load_recipe("seed-baseline", override)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("bias_lr_scale", 441.6667, "set optim.bias_lr instead, in natural units (here optim.lr x"),
        ("head_lr_scale", 5583.333, "set optim.head_lr instead"),
        ("bias_momentum", 0.85, "set optim.bias_momentum instead"),
    ],
)
def test_optimiser_options_of_the_model_name_their_optim_field(option, value, needle):
    with pytest.raises(RecipeError) as err:
        load_recipe("fast94", {f"model.options.{option}": value})
    assert str(err.value).startswith(f"model.options.{option}: ") and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_the_regularisers_are_off_by_default_in_every_builtin():
    # issue 17: off unless asked for, so every existing recipe trains as it did
    # (tests/train/test_unchanged_by_regularisers.py shows it bit for bit)
    for name in builtin_recipes():
        r = load_recipe(name)
        assert (r.augment.trivial_augment, r.augment.random_erasing) == (False, 0.0), name
        assert (r.augment.mixup, r.augment.cutmix, r.train.ema) == (0.0, 0.0, 0.0), name


def test_the_regularisers_are_set_and_round_trip_through_toml(tmp_path):
    sets = {
        "augment.trivial_augment": True,
        "augment.random_erasing": 0.25,
        "augment.mixup": 0.8,
        "augment.cutmix": 1,
        "train.ema": 0.999,
    }
    r = load_recipe("seed-improved", sets)
    assert (r.augment.trivial_augment, r.augment.random_erasing) == (True, 0.25)
    assert (r.augment.mixup, r.augment.cutmix, r.train.ema) == (0.8, 1.0, 0.999)
    path = tmp_path / "r.toml"
    path.write_text(r.to_toml())
    assert load_recipe(path) == r


def test_per_role_optim_fields_are_optional():
    base = load_recipe("seed-baseline").optim
    assert (base.bias_lr, base.head_lr, base.bias_momentum, base.weight_norm) == (
        None,
        None,
        None,
        False,
    )
    fast = load_recipe("fast94", ["optim.bias_lr=0.5"]).optim
    assert (fast.bias_lr, fast.head_lr, fast.bias_momentum) == (0.5, 1340.0, 0.85)


@pytest.mark.parametrize("name", ["seed-improved", "fast94"])
def test_optional_fields_round_trip_through_toml(tmp_path, name):
    # TOML has no null: an absent optional field is left out and reads back as None.
    r = load_recipe(name)
    path = tmp_path / "r.toml"
    path.write_text(r.to_toml())
    assert load_recipe(path) == r


def test_unknown_recipe_and_bad_toml(tmp_path):
    with pytest.raises(RecipeError, match="built-in: .*seed-baseline"):
        load_recipe("no-such-recipe")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\nlr = 1")
    with pytest.raises(RecipeError, match="bad.toml: not valid TOML"):
        load_recipe(bad)


def test_base_loops_are_refused(tmp_path):
    a = tmp_path / "a.toml"
    a.write_text(f'base = "{a}"\n')
    with pytest.raises(RecipeError, match="loops"):
        load_recipe(a)


def test_recipe_from_dict_rejects_nested_unknowns():
    with pytest.raises(RecipeError, match="train: unknown key 'epoch'"):
        recipe_from_dict({"train": {"epoch": 3}})


def test_lr_schedules():
    peak, total = 1.0, 100
    assert lr_at(50, total, peak, ScheduleConfig(name="constant")) == peak
    step = ScheduleConfig(name="step", milestones=[0.5, 0.75], gamma=0.1)
    assert [lr_at(s, total, peak, step) for s in (49, 50, 74, 75)] == pytest.approx(
        [1, 0.1, 0.1, 0.01]
    )
    cos = ScheduleConfig(name="cosine", final_lr=0.0)
    assert lr_at(0, total, peak, cos) == pytest.approx(1.0)
    assert lr_at(50, total, peak, cos) == pytest.approx(0.5)
    lin = ScheduleConfig(name="linear", warmup=0.1, final_lr=0.1)
    assert lr_at(0, total, peak, lin) == pytest.approx(0.1)  # warm-up: (0 + 1) / 10
    assert lr_at(9, total, peak, lin) == pytest.approx(1.0)
    assert lr_at(10, total, peak, lin) == pytest.approx(1.0)
    assert lr_at(100, total, peak, lin) == pytest.approx(0.1)
