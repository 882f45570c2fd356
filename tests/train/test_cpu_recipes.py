"""The CPU-budget recipes (issue 15): each one, as shipped, learns on the bundled sample with
its progressive resizing, and evaluates at the native size with its test-time augmentation."""

from __future__ import annotations

import json

import pytest

from cifarlab.recipe import builtin_recipes, load_recipe
from cifarlab.train import loop
from cifarlab.train.loop import train

CPU_RECIPES = [name for name in builtin_recipes() if name.startswith("cpu")]


def test_the_cpu_recipes_are_built_in():
    assert {"cpu85", "cpu90", "cpu93"} <= set(CPU_RECIPES)


@pytest.mark.parametrize("name", CPU_RECIPES)
@pytest.mark.slow
def test_each_cpu_recipe_learns_on_the_sample_small_first(tmp_path, name, monkeypatch):
    sizes = []
    real = loop.resize_batch
    monkeypatch.setattr(loop, "resize_batch", lambda x, s: sizes.append(s) or real(x, s))
    recipe = load_recipe(name)
    m = train(name, out_dir=tmp_path / name, data_dir="sample", progress=False, log=lambda s: None)
    hist = json.loads((tmp_path / name / "history.json").read_text())
    # The recipe as shipped: its sizes in order, the first the smallest, the last native.
    assert sorted(set(sizes)) == sorted(set(recipe.train.resolutions)) and sizes[-1] == 32
    assert sizes == sorted(sizes) and sizes[0] < 32
    assert hist["train_loss"][-1] < hist["train_loss"][1]
    assert m["tta"] == recipe.eval.tta != "none"
    assert m["test_accuracy"] > 0.3 and m["test_accuracy_tta"] > 0.3  # chance is 0.1
