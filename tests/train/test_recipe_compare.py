"""cifarlab.recipe.differences: the one meaning of "how two recipes differ" (issue 30), used for
a resume's changes, a hand-edited recipe.toml, and a study or search directory that holds
another definition."""

from __future__ import annotations

import copy

from cifarlab.recipe import differences, load_recipe


def test_equal_recipes_have_no_differences():
    assert differences(load_recipe("fast94"), load_recipe("fast94")) == {}
    assert differences({}, {}) == {}


def test_each_changed_field_by_dotted_name_with_both_values_in_sorted_order():
    old = load_recipe("fast94")
    new = load_recipe("fast94", ["train.epochs=20", "optim.lr=0.1", "seed=3"])
    diff = differences(old, new)
    assert list(diff) == ["optim.lr", "seed", "train.epochs"]  # depth first, sorted
    assert diff == {
        "optim.lr": (0.24, 0.1),
        "seed": (0, 3),
        "train.epochs": (old.train.epochs, 20.0),
    }
    assert differences(old.to_dict(), new.to_dict()) == diff  # a Recipe or its dict alike


def test_model_options_are_one_field():
    old = load_recipe("fast94")
    new = load_recipe("fast94", ["model.options.widths=[8, 16, 16]"])
    (name,) = differences(old, new)
    assert name == "model.options"
    assert differences(old, new)[name] == (old.model.options, new.model.options)


def test_an_absent_key_reads_as_none():
    assert differences({"optim": {"bias_lr": 1.0}}, {"optim": {}}) == {"optim.bias_lr": (1.0, None)}
    assert differences({"optim": {"bias_lr": None}}, {"optim": {}}) == {}
    assert differences({"a": {"b": 1}}, {}) == {"a": ({"b": 1}, None)}


def test_any_nest_of_tables_lists_being_one_value():
    """A stored definition (tune.json, study.json): tables by dotted path, lists whole."""
    stored = {
        "format": "cifarlab-study",
        "seeds": [0, 1],
        "overrides": {"train.epochs": 0.2},
        "steps": [{"name": "a", "overrides": {}}],
    }
    other = copy.deepcopy(stored)
    other["overrides"]["train.epochs"] = 0.4
    assert differences(stored, other) == {"overrides.train.epochs": (0.2, 0.4)}
    other = {**stored, "seeds": [0, 2], "steps": [{"name": "a", "overrides": {"seed": 1}}]}
    assert list(differences(stored, other)) == ["seeds", "steps"]
    assert stored["seeds"] == [0, 1]  # the inputs are not changed


def test_a_value_that_is_not_a_table_differs_whole():
    assert differences([1], {"a": 1}) == {"": ([1], {"a": 1})}
    assert differences({"a": {"b": 1}}, {"a": 2}) == {"a": ({"b": 1}, 2)}
    assert differences(None, None) == {}
