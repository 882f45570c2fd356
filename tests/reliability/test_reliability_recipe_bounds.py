"""Recipes past what is sensible, recipe paths that are not files, bytes that are not UTF-8,
and recipes stored by older runs (issue 14, item 4).

- A run longer than train.max_steps optimizer steps, or of absurd epochs, a batch larger than
  the training split, and values no run can use are refused with one line naming the field.
- A recipe file that is not UTF-8, larger than 1 MiB, or carrying a description longer than
  2,000 characters is refused with one line naming the file (and the byte offset) or field.
- A recipe path that is a directory, a FIFO, a device, a dangling link or unreadable is named
  as such, in one line; a FIFO is never opened, so nothing blocks.
- An old run's recipe (model.options.bias_lr_scale, ...) read back from the run is migrated to
  the same optimizer groups, while a new recipe with those options is still refused.
- The bounds issue 29 added (their own row): milestones out of order or past the end, sync_bn
  off CUDA, 0 epochs, negative seeds, each one line with nothing created or changed.
"""

from __future__ import annotations

import copy
import os
import shutil
import threading
from pathlib import Path

import pytest

from cifarlab.cli.main import main
from cifarlab.data.locate import load_sample
from cifarlab.data.split import split_train_val
from cifarlab.errors import RecipeError
from cifarlab.models import create_model
from cifarlab.recipe import check_run_length, dumps_toml, load_recipe, recipe_from_dict
from cifarlab.studies.ladder import load_ladder
from cifarlab.train.optim import build_optimizer

CATEGORY = "recipe_bounds"  # the row of docs/RELIABILITY.md (relhelpers.CATEGORIES)
IN_MEMORY = "a recipe checked in memory: no file is read or written"

PREFIX = "cifarlab: error: "


@pytest.fixture(autouse=True)
def _never_train(monkeypatch):
    """Every case here must be refused before training; one that is not fails at once instead
    of training (``cifarlab train`` imports the loop's ``train`` when it runs)."""
    from cifarlab.train import loop

    def accepted(*args, **kwargs):
        raise AssertionError("the recipe was accepted: training started")

    monkeypatch.setattr(loop, "train", accepted)


def _cli_refuses(argv: list[str], out: Path, capsys) -> str:
    """``cifarlab train ARGV --out OUT`` exits 2 with one line and creates nothing."""
    capsys.readouterr()
    code = main(["train", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err[-2000:]
    assert err.startswith(PREFIX) and len(err.splitlines()) == 1, err[:2000]
    assert len(err) < 500, f"a {len(err):,}-character error line"
    assert not out.exists(), "a refused recipe created the run directory"
    return err[len(PREFIX) :]


# --------------------------------------------------------------------------- --set values

BAD_SETS = [
    ("epochs 1e12: a run that never ends", ["train.epochs=1e12"], "train.epochs: 1e+12 is more"),
    (
        "epochs 1e12 with max_steps raised: still refused",
        ["train.epochs=1e12", "train.max_steps=9223372036854775807"],
        "train.epochs: 1e+12 is more than 1,000,000 epochs",
    ),
    (
        "1,000 epochs of batch 32: 1.25M steps, over max_steps",
        ["train.epochs=1000"],
        "is 1,250,000 optimizer steps, more than train.max_steps = 1,000,000; to run that long, "
        "--set train.max_steps=1250000",
    ),
    (
        "epochs as a 400-digit integer (a float overflow)",
        ["train.epochs=1" + "0" * 400],
        "train.epochs: expected a finite number",
    ),
    ("max_steps 0", ["train.max_steps=0"], "train.max_steps: must be > 0"),
    (
        "translate of the image side (reflect padding fails mid-run)",
        ["augment.translate=32"],
        "augment.translate: must be in [0, 31] pixels",
    ),
    ("cutout larger than the image", ["augment.cutout=33"], "augment.cutout: must be in [0, 32]"),
    ("negative split seed (numpy fails mid-run)", ["data.split_seed=-1"], "data.split_seed: must"),
    ("100,000 threads", ["system.threads=100000"], "system.threads: must be in [0, 1024]"),
    (
        "a 100,000-character description",
        ["description='" + "d" * 100_000 + "'"],
        "description: 100,000 characters, more than the limit of 2,000",
    ),
    ("a 201-character name", ["name='" + "n" * 201 + "'"], "name: 201 characters"),
    (
        "a 100,000-character optimizer name (echoed cut short)",
        ["optim.name='" + "x" * 100_000 + "'"],
        "(100,002 characters) is not allowed",
    ),
]


@pytest.mark.parametrize("name,items,expected", BAD_SETS, ids=[b[0] for b in BAD_SETS])
def test_values_past_the_bounds_are_one_clear_error(
    name, items, expected, tmp_path, ledger, capsys
):
    argv = ["--recipe", "seed-baseline"]
    for item in items:
        argv += ["--set", item]
    with ledger.case(CATEGORY, f"--set {name}", guard=[tmp_path]) as case:
        msg = _cli_refuses(argv, tmp_path / "run", capsys)
        assert expected in msg, msg
        case.note = msg[:150]


# --------------------------------------------------------------------------- run length


def _sample_split() -> int:
    """Training images of the bundled sample after seed-baseline's 20% validation split."""
    data = load_sample()
    train_idx, _ = split_train_val(data.train_labels, val_fraction=0.2, seed=42)
    return len(train_idx)


RUN_LENGTH = [
    (
        "fast94 (batch 2000) with 20% held out from the sample",
        "fast94",
        {"data.val_fraction": 0.2},
        "train.batch_size: 2,000 images per step is more than the training split holds (1,600)",
    ),
    (
        "batch 4,096 on the sample",
        "seed-baseline",
        {"train.batch_size": 4096},
        "set train.batch_size to 1600 or less",
    ),
    (
        "1,000 epochs of batch 1 on the sample: 1.6M steps",
        "seed-baseline",
        {"train.epochs": 1000, "train.batch_size": 1, "train.max_steps": 10**8},
        "train.epochs: 1000 epochs at batch 1 on the 1,600-image training split is 1,600,000 "
        "optimizer steps, more than train.max_steps = 1,000,000",
    ),
]


@pytest.mark.parametrize("name,base,overrides,expected", RUN_LENGTH, ids=[r[0] for r in RUN_LENGTH])
def test_run_length_on_the_loaded_split_is_one_clear_error(name, base, overrides, expected, ledger):
    n_train = _sample_split()
    assert n_train == 1600
    with ledger.case(CATEGORY, f"check_run_length: {name}", na=IN_MEMORY) as case:
        recipe = load_recipe(base, overrides)  # passes the up-front check (or raised max_steps)
        if "train.max_steps" in overrides:
            recipe.train.max_steps = 1_000_000  # as if max_steps were left at its default
        with pytest.raises(RecipeError) as err:
            check_run_length(recipe, n_train)
        msg = str(err.value)
        assert expected in msg and "\n" not in msg, msg
        case.note = msg[:150]


# --------------------------------------------------------------------------- files


def _latin1(path: Path) -> None:
    path.write_bytes('description = "café au lait"\n'.encode("latin-1"))


def _oversized(path: Path) -> None:
    # The report's case: a 50 MB description. The file is refused by size before it is read.
    with open(path, "wb") as f:
        f.write(b'description = "')
        f.write(b"d" * (50 << 20))
        f.write(b'"\n')


def _long_description(path: Path) -> None:
    path.write_text(f'description = "{"d" * 100_000}"\n')  # 100 KB: under the file limit


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dangling(path: Path) -> None:
    path.symlink_to(path.with_name("moved-away.toml"))


FILES = [
    (
        "non-UTF-8 byte (a Latin-1 e-acute)",
        "r.toml",
        _latin1,
        "is not UTF-8: byte 0xe9 at offset 18",
    ),
    ("50 MB recipe file (a 50 MB description)", "r.toml", _oversized, "more than the limit of"),
    (
        "100,000-character description in a file",
        "r.toml",
        _long_description,
        "description: 100,000 characters",
    ),
    ("directory named .toml", "runs.toml", _directory, "is a directory, not a recipe file"),
    ("directory without .toml", "runs", _directory, "is a directory, not a recipe file"),
    ("FIFO named .toml", "pipe.toml", _fifo, "is a named pipe (FIFO), not a recipe file"),
    ("FIFO without .toml", "pipe", _fifo, "is a named pipe (FIFO), not a recipe file"),
    ("dangling symlink", "link.toml", _dangling, "is a symbolic link to"),
]


def _without_blocking(fn, path: Path):
    """fn() in a thread; should it block on a FIFO, the FIFO is opened for writing to free it."""
    out: list = [None, None]

    def run():
        try:
            out[0] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out[1] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail(f"reading {path} blocked")
    return out


@pytest.mark.parametrize("name,fname,make,expected", FILES, ids=[f[0] for f in FILES])
def test_bad_recipe_files_are_one_clear_error(
    name, fname, make, expected, tmp_path, ledger, capsys
):
    if make is _fifo and not hasattr(os, "mkfifo"):
        ledger.not_run(CATEGORY, f"recipe file: {name}", "no FIFOs here")
        pytest.skip("no FIFOs here")
    path = tmp_path / fname
    make(path)
    with ledger.case(CATEGORY, f"recipe file: {name}", guard=[tmp_path]) as case:
        _, exc = _without_blocking(lambda: load_recipe(path), path)
        assert isinstance(exc, RecipeError), repr(exc)[:300]
        msg = str(exc)
        assert expected in msg and "\n" not in msg and len(msg) < 500, msg[:500]
        # The command refuses it too, with the same line: its own assertion, if one fails, is
        # raised here (a thread would otherwise keep it to itself).
        line, failed = _without_blocking(
            lambda: _cli_refuses(["--recipe", str(path)], tmp_path / "run", capsys), path
        )
        if failed is not None:
            raise failed
        assert expected in line, line
        case.note = msg.replace(str(tmp_path), "DIR")[:150]


def test_a_device_and_an_unreadable_file_are_one_clear_error(tmp_path, ledger, monkeypatch, capsys):
    if os.path.exists("/dev/zero"):
        with ledger.case(
            CATEGORY, "recipe file: a character device (/dev/zero)", na="reads /dev/zero only"
        ) as case:
            with pytest.raises(RecipeError, match=r"^/dev/zero: is a device, not a recipe file"):
                load_recipe("/dev/zero")
            case.note = "/dev/zero: is a device, not a recipe file"
    else:
        ledger.not_run(CATEGORY, "recipe file: a character device (/dev/zero)", "no /dev/zero")
    path = tmp_path / "locked.toml"
    path.write_text("seed = 1\n")
    real = os.open

    def deny(p, *args, **kwargs):  # EACCES as a user without read permission gets (we may be root)
        if os.fspath(p) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(p, *args, **kwargs)

    with ledger.case(
        CATEGORY, "recipe file: unreadable (EACCES on open)", guard=[tmp_path]
    ) as case:
        case.simulated = True  # EACCES from a patched os.open: root passes real mode bits
        monkeypatch.setattr(os, "open", deny)
        msg = _cli_refuses(["--recipe", str(path)], tmp_path / "run", capsys)
        assert msg == f"{path}: cannot read the recipe file (permission denied)", msg
        case.note = msg.replace(str(tmp_path), "DIR")


def test_a_non_utf8_ladder_is_one_clear_error(tmp_path, ledger):
    path = tmp_path / "ladder.toml"
    path.write_bytes(b'name = "t"\nbase = "seed-baseline"\n# \x80\n')
    with ledger.case(CATEGORY, "ladder file: non-UTF-8 byte", guard=[tmp_path]) as case:
        with pytest.raises(RecipeError) as err:
            load_ladder(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: ladder file is not UTF-8: byte 0x80 at offset 36"), msg
        case.note = msg.replace(str(tmp_path), "DIR")[:150]


# --------------------------------------------------------------------------- stored recipes


def _old_fast94() -> dict:
    """fast94 as a run stored it before bbdd471: today's resolved recipe with the optimiser
    policy back in fastnet's options (the stored form is checked field by field in
    tests/train/test_recipe_sanity.py)."""
    raw = load_recipe("fast94").to_dict()
    for key in ("bias_lr", "head_lr", "bias_momentum", "weight_norm"):
        del raw["optim"][key]
    del raw["train"]["max_steps"]
    raw["model"]["options"].update(
        bias_lr_scale=441.6667, head_lr_scale=5583.333, bias_momentum=0.85
    )
    return raw


def test_recipes_stored_by_older_runs(tmp_path, ledger, capsys):
    old = _old_fast94()
    with ledger.case(
        CATEGORY, "old fast94 recipe read back from its run: migrated", na=IN_MEMORY
    ) as case:
        r = recipe_from_dict(copy.deepcopy(old), stored=True)
        model = create_model(r.model.name, **{**r.model.options, "widths": [8, 16, 16]})
        scales = [g["lr_scale"] for g in build_optimizer(r.optim, model).param_groups]
        assert scales == pytest.approx([1.0, 441.6667, 5583.333], rel=1e-12)
        assert (r.optim.bias_momentum, r.optim.weight_norm) == (0.85, True)
        case.note = (
            f"optim.bias_lr = {r.optim.bias_lr:g}, head_lr = {r.optim.head_lr:g}; same groups"
        )
    path = tmp_path / "recipe.toml"
    path.write_text(dumps_toml(old))
    with ledger.case(
        CATEGORY, "old run's recipe.toml given as a new --recipe: refused", guard=[tmp_path]
    ) as case:
        msg = _cli_refuses(["--recipe", str(path)], tmp_path / "run", capsys)
        assert msg.startswith("model.options.bias_lr_scale: optimiser policy moved"), msg
        case.note = msg[:150]


# --------------------------------------------------------------------------- bounds of issue 29

ADDED = "recipe_bounds_29"  # the row of the bounds issue 29 added

NEW_BOUNDS = [
    (
        "schedule.milestones out of order",
        ["--recipe", "resnet20", "--set", "schedule.milestones=[0.9, 0.1]"],
        "schedule.milestones: must be increasing",
    ),
    (
        "schedule.milestones past the end of the run",
        ["--recipe", "resnet20", "--set", "schedule.milestones=[0.5, 1.5]"],
        "schedule.milestones",
    ),
    (
        "system.sync_bn on the CPU",
        ["--set", "system.sync_bn=true", "--device", "cpu"],
        "system.sync_bn: torch's SyncBatchNorm runs on CUDA GPUs only",
    ),
    ("train.epochs 0", ["--set", "train.epochs=0"], "train.epochs: must be > 0"),
    ("--seed -1 for a new run", ["--seed", "-1"], "--seed: must be >= 0, got -1"),
]


def _error_line(argv: list[str], capsys) -> str:
    """``cifarlab ARGV`` exits 2 with one error line (argparse's exit through SystemExit)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(PREFIX) and len(err.splitlines()) == 1, err[-2000:]
    return err[len(PREFIX) :]


@pytest.mark.parametrize("name,argv,expected", NEW_BOUNDS, ids=[b[0] for b in NEW_BOUNDS])
def test_bounds_a_run_could_not_mean_are_one_clear_error(
    name, argv, expected, tmp_path, ledger, capsys, monkeypatch
):
    if "sync_bn" in name:  # refused inside train(), from the device, before the data is read
        from cifarlab.train import context

        def no_data(*args, **kwargs):
            raise AssertionError("the data was read: sync_bn was accepted off CUDA")

        monkeypatch.undo()
        monkeypatch.setattr(context, "load_data_for", no_data)
    with ledger.case(ADDED, name, guard=[tmp_path]) as case:
        out = tmp_path / "run"
        msg = _error_line(["train", *argv, "--data-dir", "sample", "--out", str(out)], capsys)
        assert expected in msg and not out.exists(), msg
        case.note = msg[:150]


@pytest.fixture
def finished(reference_run, tmp_path) -> Path:
    return Path(
        shutil.copytree(reference_run, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    )


def test_a_negative_seed_is_refused_on_a_finished_run(finished, ledger, capsys):
    with ledger.case(
        ADDED, "--seed -1 --allow-change seed on a finished run", guard=[finished]
    ) as case:
        argv = ["train", "--resume", str(finished), "--seed", "-1", "--allow-change", "seed"]
        msg = _error_line([*argv, "--data-dir", "sample"], capsys)
        assert "--seed: must be >= 0" in msg, msg
        case.note = msg[:150]


def test_a_negative_corruption_seed_is_refused_before_anything(finished, ledger, capsys):
    with ledger.case(ADDED, "evaluate --corruption-seed -1", guard=[finished]) as case:
        argv = ["evaluate", str(finished), "--device", "cpu", "--data-dir", "sample"]
        argv += ["--corruptions", "fog", "--corruption-seed", "-1"]
        msg = _error_line(argv, capsys)
        assert msg == "--corruption-seed: must be 0 or more, got -1", msg
        case.note = msg[:150]
