"""Ladders as data: the built-in seed-report ladder, leave-one-out steps, bad ladder files."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cifarlab.errors import RecipeError
from cifarlab.models import create_model
from cifarlab.recipe import load_recipe
from cifarlab.studies.ladder import (
    builtin_ladders,
    cumulative_steps,
    final_overrides,
    leave_one_out_steps,
    load_ladder,
)

REPORT = {
    "baseline": 71.77,
    "weight-decay": 72.89,
    "dropout": 74.45,
    "augment": 75.50,
    "no-bias": 76.63,
    "batch-norm": 77.70,
}


def test_seed_report_ladder_is_the_reports():
    assert "seed-report" in builtin_ladders()
    ladder = load_ladder("seed-report")
    assert ladder.base == "seed-baseline"
    assert [s.name for s in ladder.steps] == list(REPORT)
    assert {s.name: s.reference for s in ladder.steps} == REPORT
    steps = cumulative_steps(ladder)
    assert steps[0].overrides == {}
    assert steps[1].overrides == {"optim.weight_decay": 1e-5}
    assert steps[2].changes == {"model.options.dropout": 0.5, "train.epochs": 25}
    # cumulative: every step keeps what the steps before it changed
    for prev, step in zip(steps, steps[1:], strict=False):
        assert prev.overrides.items() <= step.overrides.items()


def test_seed_report_final_step_is_seed_improved():
    ladder = load_ladder("seed-report")
    final = load_recipe(ladder.base, final_overrides(ladder)).to_dict()
    improved = load_recipe("seed-improved").to_dict()
    for r in (final, improved):
        r.pop("name"), r.pop("description")
    model_f, model_i = final.pop("model"), improved.pop("model")
    assert final == improved
    # the model: seednet + options there, seednet-improved here; the same network
    assert model_f == {
        "name": "seednet",
        "options": {"dropout": 0.5, "bias": False, "batch_norm": True},
    }
    assert model_i["name"] == "seednet-improved"
    a = create_model(model_f["name"], **model_f["options"])
    b = create_model(model_i["name"], **model_i["options"])
    assert [(n, p.shape) for n, p in a.named_parameters()] == [
        (n, p.shape) for n, p in b.named_parameters()
    ]
    assert [(n, buf.shape) for n, buf in a.named_buffers()] == [
        (n, buf.shape) for n, buf in b.named_buffers()
    ]
    assert repr(a) == repr(b)
    # and the baseline step is the seed-baseline recipe itself
    assert load_recipe(ladder.base, cumulative_steps(ladder)[0].overrides) == load_recipe(
        "seed-baseline"
    )


def test_modern_ladder_adds_each_regulariser_to_seed_improved_one_at_a_time():
    assert "modern" in builtin_ladders()
    ladder = load_ladder("modern")
    assert ladder.base == "seed-improved"
    names = ["seed-improved", "ema", "trivial-augment", "mixup-cutmix", "random-erasing"]
    assert [s.name for s in ladder.steps] == names
    recipes = [load_recipe(ladder.base, s.overrides) for s in cumulative_steps(ladder)]
    assert recipes[0] == load_recipe("seed-improved")
    on = [
        (r.train.ema, r.augment.trivial_augment, r.augment.mixup, r.augment.cutmix)
        + (r.augment.random_erasing,)
        for r in recipes
    ]
    assert on == [
        (0.0, False, 0.0, 0.0, 0.0),
        (0.999, False, 0.0, 0.0, 0.0),
        (0.999, True, 0.0, 0.0, 0.0),
        (0.999, True, 0.8, 1.0, 0.0),
        (0.999, True, 0.8, 1.0, 0.25),
    ]
    for r in recipes:  # the rest of seed-improved is kept at every step
        assert (r.model.name, r.optim.lr, r.train.epochs, r.augment.flip) == (
            "seednet-improved",
            7e-4,
            25,
            True,
        )
        create_model(r.model.name, num_classes=10, **r.model.options)


def test_cli_lists_the_builtin_ladders():
    res = subprocess.run(
        [sys.executable, "-m", "cifarlab", "studies", "ladders"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    listed = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    assert listed == builtin_ladders() and "modern" in listed


def test_leave_one_out_steps():
    ladder = load_ladder("seed-report")
    steps = leave_one_out_steps(ladder)
    assert [s.name for s in steps] == ["final"] + [f"-{n}" for n in list(REPORT)[1:]]
    assert steps[0].overrides == final_overrides(ladder)
    assert all(s.diff_ref == "final" for s in steps[1:])
    no_wd = load_recipe(ladder.base, steps[1].overrides)
    assert no_wd.optim.weight_decay == 0.0 and no_wd.model.options["batch_norm"] is True
    assert steps[1].changes == {"optim.weight_decay": 0.0}
    no_drop = load_recipe(ladder.base, steps[2].overrides)
    assert "dropout" not in no_drop.model.options and no_drop.train.epochs == 10
    assert no_drop.augment.flip is True and no_drop.optim.lr == 7e-4


def _ladder(tmp_path, steps: str, head: str = 'name = "t"\nbase = "seed-baseline"\n'):
    path = tmp_path / "ladder.toml"
    path.write_text(head + steps, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "steps, words",
    [
        (
            '[[steps]]\nname = "a"\nchanges = { "optim.wieght_decay" = 1e-5 }\n',
            ["'a'", "wieght_decay"],
        ),
        ('[[steps]]\nname = "a"\nchanges = { "optim.lr" = -1.0 }\n', ["'a'", "optim.lr"]),
        (
            '[[steps]]\nname = "a"\nchanges = { "model.options.dropuot" = 0.5 }\n',
            ["'a'", "dropuot"],
        ),
        ('[[steps]]\nname = "a"\nchanges = {}\nreference = "high"\n', ["'a'", "reference"]),
        ('[[steps]]\nname = "a"\nchange = {}\n', ["'a'", "'change'"]),
        ('[[steps]]\nname = "a"\n[[steps]]\nname = "a"\n', ["'a'", "unique"]),
        ('[[steps]]\nname = "-x"\n', ["name"]),
        ('[[steps]]\nname = "a"\nchanges = { "augment.flip" = "yes" }\n', ["'a'", "augment.flip"]),
        ("", ["[[steps]]"]),
    ],
)
def test_bad_ladder_files_fail_in_one_line_naming_file_and_step(tmp_path, steps, words):
    path = _ladder(tmp_path, steps)
    with pytest.raises(RecipeError) as exc:
        load_ladder(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    for w in words:
        assert w in msg


def test_nested_changes_tables_and_recipe_file_base(tmp_path):
    (tmp_path / "mine.toml").write_text('base = "seed-baseline"\n[optim]\nlr = 5e-4\n')
    path = _ladder(
        tmp_path,
        '[[steps]]\nname = "a"\n[steps.changes.optim]\nweight_decay = 1e-4\n',
        head='name = "t"\nbase = "mine.toml"\n',
    )
    ladder = load_ladder(path)
    assert ladder.steps[0].changes == {"optim.weight_decay": 1e-4}
    r = load_recipe(ladder.base, cumulative_steps(ladder)[0].overrides)
    assert (r.optim.lr, r.optim.weight_decay) == (5e-4, 1e-4)
    with pytest.raises(RecipeError, match="no such built-in ladder"):
        load_ladder("no-such-ladder")


def test_cli_bad_ladder_is_a_one_line_error(tmp_path):
    path = _ladder(tmp_path, '[[steps]]\nname = "wd"\nchanges = { "optim.weight_decay" = -1 }\n')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cifarlab",
            "ablate",
            "--ladder",
            str(path),
            "--out",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("cifarlab: error: ") and r.stderr.count("\n") == 1
    assert str(path) in r.stderr and "'wd'" in r.stderr and "optim.weight_decay" in r.stderr
    assert not (tmp_path / "s").exists()  # nothing written before the ladder is known good
