"""Recipes a user can hurt themselves with: bounds, file kinds, encodings, sizes (issue 14,
item 4)."""

from __future__ import annotations

import os
import threading

import pytest

from cifarlab import recipe as recipe_mod
from cifarlab.errors import RecipeError
from cifarlab.recipe import (
    DEFAULT_MAX_STEPS,
    MAX_FILE_BYTES,
    builtin_recipes,
    check_run_length,
    load_recipe,
)
from cifarlab.studies.ladder import load_ladder


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

    monkeypatch.setattr(recipe_mod.tomllib, "loads", parse)
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
