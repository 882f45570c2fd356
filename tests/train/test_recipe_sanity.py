"""Recipes a user can hurt themselves with: bounds, file kinds, encodings, sizes; and the
migration of recipes stored by older runs (issue 14, item 4)."""

from __future__ import annotations

import copy
import os
import threading

import pytest

from cifarlab import recipe as recipe_mod
from cifarlab.errors import RecipeError
from cifarlab.models import create_model
from cifarlab.recipe import (
    DEFAULT_MAX_STEPS,
    MAX_FILE_BYTES,
    builtin_recipes,
    check_run_length,
    load_recipe,
    reading,
    recipe_from_dict,
)
from cifarlab.studies.ladder import load_ladder
from cifarlab.train.optim import build_optimizer


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


# --------------------------------------------------------------------------- file size


def test_a_recipe_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    path = tmp_path / "big.toml"
    path.write_bytes(b"seed = 1\n" + b"#" * MAX_FILE_BYTES)

    def parse(text):
        raise AssertionError("parsed")

    monkeypatch.setattr(reading.tomlread, "loads", parse)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == (
        f"{path}: recipe file is 1,048,585 bytes, more than the limit of 1,048,576 bytes "
        "(1 MiB); a recipe is a few kilobytes of settings"
    )


# --------------------------------------------------------------------------- encoding


def test_a_non_utf8_byte_is_refused_with_its_offset(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "café"\n'.encode("latin-1"))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == (
        f"{path}: recipe file is not UTF-8: byte 0xe9 at offset 18 is not valid UTF-8 "
        "(invalid continuation byte); save the file as UTF-8"
    )
    ladder = tmp_path / "ladder.toml"
    ladder.write_bytes(b'name = "t"\nbase = "seed-baseline"\n\xff')
    with pytest.raises(RecipeError, match=r"ladder.toml: ladder file is not UTF-8: byte 0xff at "):
        load_ladder(ladder)


def test_utf8_text_and_a_byte_order_mark_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfdescription = "caf\xc3\xa9"\n')
    assert load_recipe(path).description == "café"


# --------------------------------------------------------------------------- file kinds


def test_a_directory_is_named_as_one(tmp_path):
    for name in ("runs.toml", "runs"):
        (tmp_path / name).mkdir()
        with pytest.raises(RecipeError) as err:
            load_recipe(tmp_path / name)
        assert str(err.value) == (
            f"{tmp_path / name}: is a directory, not a recipe file; give the path of a .toml file"
        )


def test_a_run_directory_named_like_a_builtin_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fast94").mkdir()
    assert load_recipe("fast94").model.name == "fastnet"


def _load_in_thread(path) -> BaseException | None:
    """load_recipe(path) in a thread; a FIFO that blocks it is unblocked, and the test fails."""
    out: list[BaseException | None] = [None]

    def run():
        try:
            load_recipe(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out[0] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # lets the blocked open return
        os.close(fd)
        t.join(10)
        pytest.fail(f"reading {path} blocked")
    return out[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name", ["pipe.toml", "pipe"])
def test_a_fifo_is_named_and_never_opened(tmp_path, name):
    path = tmp_path / name
    os.mkfifo(path)
    exc = _load_in_thread(path)
    assert isinstance(exc, RecipeError), exc
    assert str(exc) == (
        f"{path}: is a named pipe (FIFO), not a recipe file; give the path of a .toml file"
    )


def test_a_dangling_symlink_names_its_target(tmp_path):
    link = tmp_path / "mine.toml"
    link.symlink_to(tmp_path / "moved.toml")
    with pytest.raises(RecipeError) as err:
        load_recipe(link)
    assert str(err.value) == (
        f"{link}: recipe file is a symbolic link to '{tmp_path / 'moved.toml'}', "
        "which does not exist"
    )


@pytest.mark.parametrize("how", ["chmod", "injected"])
def test_an_unreadable_file_says_so(tmp_path, monkeypatch, how):
    path = tmp_path / "locked.toml"
    path.write_text("seed = 1\n")
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        path.chmod(0)
    else:  # as root: the open fails as it would for anyone else
        real = os.open

        def deny(p, *args, **kwargs):
            if os.fspath(p) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real(p, *args, **kwargs)

        monkeypatch.setattr(os, "open", deny)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == f"{path}: cannot read the recipe file (permission denied)"


def test_a_missing_file_is_still_not_found(tmp_path):
    with pytest.raises(RecipeError, match=r"nope.toml: recipe file not found$"):
        load_recipe(tmp_path / "nope.toml")
    with pytest.raises(RecipeError, match=r"sub/nope: recipe file not found$"):
        load_recipe("sub/nope")


# --------------------------------------------------------------------------- stored recipes

# fast94 as a run stored it before the optimiser policy moved to [optim] (commit bbdd471^'s
# load_recipe("fast94").to_dict(), verbatim): the checkpoint's "recipe", and recipe.toml.
OLD_FAST94 = {
    "name": "fast94",
    "description": "fastnet (airbench94_muon): Muon on conv filters + Nesterov SGD, batch 2000, "
    "10 epochs, label smoothing 0.2, flip + translate 2, flip-translate TTA",
    "seed": 0,
    "data": {
        "source": "auto",
        "val_fraction": 0.0,
        "split_seed": 42,
        "mean": [0.4914, 0.4822, 0.4465],
        "std": [0.247, 0.2435, 0.2616],
    },
    "augment": {
        "flip": True,
        "translate": 2,
        "pad_mode": "reflect",
        "brightness": 0.0,
        "contrast": 0.0,
        "saturation": 0.0,
        "cutout": 0,
    },
    "model": {
        "name": "fastnet",
        "options": {
            "widths": [64, 256, 256],
            "head_scale": 0.00390625,
            "head_init": "unit",
            "whiten_bias_train": 0.375,
            "bias_lr_scale": 441.6667,
            "head_lr_scale": 5583.333,
            "bias_momentum": 0.85,
        },
    },
    "optim": {
        "name": "muon",
        "lr": 0.24,
        "momentum": 0.6,
        "nesterov": True,
        "weight_decay": 0.016667,
        "betas": [0.9, 0.999],
    },
    "schedule": {
        "name": "linear",
        "warmup": 0.0,
        "final_lr": 0.0,
        "milestones": [0.5, 0.75],
        "gamma": 0.1,
    },
    "train": {
        "epochs": 10.0,
        "batch_size": 2000,
        "eval_points": 10,
        "label_smoothing": 0.2,
        "checkpoint_every": 0,
        "grad_clip": 0.0,
    },
    "eval": {"tta": "flip-translate", "batch_size": 2000},
    "system": {
        "device": "auto",
        "precision": "auto",
        "channels_last": True,
        "compile": False,
        "threads": 0,
        "sync_bn": False,
    },
}


def _groups(recipe) -> list[dict]:
    model = create_model(recipe.model.name, **{**recipe.model.options, "widths": [8, 16, 16]})
    opt = build_optimizer(recipe.optim, model)
    keys = ("lr_scale", "weight_decay", "momentum", "muon", "weight_norm")
    return [{k: g.get(k) for k in keys} for g in opt.param_groups]


def test_an_old_stored_fast94_is_migrated_to_the_same_optimizer_groups():
    raw = copy.deepcopy(OLD_FAST94)
    r = recipe_from_dict(raw, stored=True)
    assert raw == OLD_FAST94  # the caller's dict is left as it was
    assert r.optim.bias_lr == 0.24 * 441.6667 and r.optim.head_lr == 0.24 * 5583.333
    assert (r.optim.bias_momentum, r.optim.weight_norm) == (0.85, True)
    assert set(r.model.options) == {"widths", "head_scale", "head_init", "whiten_bias_train"}
    # The groups fastnet built for itself before bbdd471 (its param_groups: filters under Muon
    # at norm sqrt(out), then biases and head at lr x scale, decay wd / scale, momentum 0.85).
    wd = 0.016667
    old = [
        {"lr_scale": 1.0, "weight_decay": wd, "momentum": 0.6, "muon": True, "weight_norm": True},
        {"lr_scale": 441.6667, "weight_decay": wd / 441.6667, "momentum": 0.85},
        {"lr_scale": 5583.333, "weight_decay": wd / 5583.333, "momentum": 0.85},
    ]
    new = _groups(r)
    for got, want in zip(new, old, strict=True):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-12), (key, got, want)


def test_an_old_stored_fastnet_without_the_options_gets_their_old_defaults():
    raw = copy.deepcopy(OLD_FAST94)
    for key in ("bias_lr_scale", "head_lr_scale", "bias_momentum"):
        del raw["model"]["options"][key]
    raw["optim"].update(name="sgd", lr=0.1)
    r = recipe_from_dict(raw, stored=True)
    # fastnet's defaults then: bias_lr_scale 64, head_lr_scale 1, bias_momentum = momentum.
    assert (r.optim.bias_lr, r.optim.head_lr, r.optim.bias_momentum) == (0.1 * 64.0, None, None)
    assert r.optim.weight_norm is False  # only Muon read it
    assert [g["lr_scale"] for g in _groups(r)] == pytest.approx([1.0, 64.0, 1.0])


def test_a_stored_recipe_of_today_reads_back_unchanged():
    for name in builtin_recipes():
        r = load_recipe(name)
        assert recipe_from_dict(r.to_dict(), stored=True) == r


def test_a_new_recipe_with_the_old_options_is_still_refused(tmp_path):
    with pytest.raises(RecipeError, match=r"^model.options.bias_lr_scale: optimiser policy moved"):
        recipe_from_dict(copy.deepcopy(OLD_FAST94))
    path = tmp_path / "recipe.toml"  # an old run's recipe.toml given as a new recipe
    path.write_text(recipe_mod.dumps_toml(OLD_FAST94))
    with pytest.raises(RecipeError, match=r"^model.options.bias_lr_scale: optimiser policy moved"):
        load_recipe(path)
    with pytest.raises(RecipeError, match=r"^model.options.head_lr_scale: .*set optim.head_lr"):
        load_recipe("fast94", ["model.options.head_lr_scale=5583.333"])


def test_a_stored_recipe_skips_the_limits_of_new_runs_only():
    raw = load_recipe("seed-baseline").to_dict()
    raw["description"] = "x" * 5000  # accepted when that run started
    raw["train"]["epochs"] = 1000.0
    del raw["train"]["max_steps"]
    r = recipe_from_dict(raw, stored=True)
    assert len(r.description) == 5000 and r.train.epochs == 1000.0
    with pytest.raises(RecipeError, match="^description: 5,000 characters"):
        recipe_from_dict(raw)
    raw["optim"]["lr"] = -1.0  # a bad value is refused, stored or not
    with pytest.raises(RecipeError, match="^optim.lr: must be > 0"):
        recipe_from_dict(raw, stored=True)
