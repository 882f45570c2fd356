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


def test_depth_ladder_is_he_et_al_figure_6_on_one_schedule():
    assert "depth" in builtin_ladders()
    ladder = load_ladder("depth")
    assert ladder.base == "resnet20"
    steps = cumulative_steps(ladder)
    assert [s.name for s in steps] == ["plain-20", "plain-56", "resnet-56", "resnet-20"]
    recipes = [load_recipe(ladder.base, s.overrides) for s in steps]
    nets = [(r.model.name, r.model.options.get("plain", False)) for r in recipes]
    assert nets == [
        ("resnet20", True),
        ("resnet56", True),
        ("resnet56", False),
        ("resnet20", False),
    ]
    # Everything but the network is the same in every step: one schedule for all four.
    rest = []
    for r in recipes:
        d = r.to_dict()
        d.pop("model"), d.pop("name"), d.pop("description")
        rest.append(d)
    assert all(d == rest[0] for d in rest)
    first = recipes[0]
    assert (first.train.epochs, first.train.eval_points) == (8, 8)
    assert (first.optim.name, first.optim.lr, first.schedule.name) == ("sgd", 0.1, "step")
    # Each plain net is its residual twin with the shortcuts taken out: same parameters.
    built = [create_model(r.model.name, num_classes=10, **r.model.options) for r in recipes]
    count = [sum(p.numel() for p in m.parameters()) for m in built]
    assert count[0] == count[3] and count[1] == count[2] and count[1] > 3 * count[0]


def test_depth_ladder_fits_two_hours_of_the_bf16_cpu_at_two_seeds():
    # The ladder's comment: ResNet-20 ~1,000 training images/s on a 2-core Zen 4 CPU with
    # native bf16, 56 layers ~3x slower, plain nets as their twins; 2 seeds in ~7,200 s.
    from cifarlab.recipe import run_steps

    ladder = load_ladder("depth")
    seconds = 0.0
    for step in cumulative_steps(ladder):
        r = load_recipe(ladder.base, step.overrides)
        n_train = round(50_000 * (1 - r.data.val_fraction))
        images = run_steps(r, n_train)[1] * r.train.batch_size
        seconds += 2 * images / (1000.0 if r.model.name == "resnet20" else 1000.0 / 3)
    assert 0.7 * 7200 < seconds < 0.85 * 7200, seconds  # training; the rest: evaluation, start-up
