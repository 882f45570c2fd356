"""Checkpoint format versions (issue 30): a stored recipe is migrated by the format version it
was stored under, one explicit step per version; the current version is read as it is; a
newer one is refused in one line. A genuine version-1 run still loads, evaluates and resumes.

``v1_run/`` is a real run written by cifarlab at commit 5e1daae (the last before bbdd471 moved
the optimiser policy from fastnet's options to ``[optim]``; checkpoint format 1): a small
fast94 on the bundled sample, stopped right after its step-8 checkpoint (of 16), as a crash
there leaves it (its stale .lock left out). Made with ``git archive 5e1daae src | tar -x -C
/tmp/old`` and, under ``PYTHONPATH=/tmp/old/src``, ``cifarlab.train.loop.train("fast94",
out_dir="v1_run", data_dir="src/cifarlab/data/sample", overrides=SMALL_FAST94)`` with its
``save_checkpoint`` wrapped to stop after step 8. Resumed by today's code, it ends with
weights bit-identical to the old code's uninterrupted run (checked on the machine that made
it; float kernels differ between CPUs, so that is not asserted here).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

from cifarlab.cli.main import main
from cifarlab.errors import CheckpointError, RecipeError
from cifarlab.models import create_model
from cifarlab.recipe import load_recipe, migrate_stored, recipe_from_dict
from cifarlab.rundir import FORMAT, FORMAT_VERSION, RunDir, load_checkpoint
from cifarlab.train.loop import train
from cifarlab.train.optim import build_optimizer

V1_RUN = Path(__file__).with_name("v1_run")
SMALL_FAST94 = {  # how v1_run was trained
    "model.options.widths": [8, 16, 16],
    "train.epochs": 2,
    "train.batch_size": 250,
    "train.eval_points": 2,
    "system.threads": 1,
    "data.val_fraction": 0.1,
    "eval.batch_size": 500,
    "system.precision": "fp32",
}
HYPER = ("lr_scale", "weight_decay", "momentum", "nesterov", "muon", "weight_norm")


def _old_fastnet() -> dict:
    """A fastnet recipe as format 1 stored it before bbdd471 (the fixture run's own)."""
    return load_checkpoint(V1_RUN / "checkpoint.pt")["recipe"]


def test_the_current_format_is_2():
    assert FORMAT_VERSION == 2


def test_a_version_1_recipe_is_migrated_by_its_step():
    raw = _old_fastnet()
    before = copy.deepcopy(raw)
    r = recipe_from_dict(raw, stored=True, version=1)
    assert raw == before  # the caller's dict is left as it was
    assert r.optim.bias_lr == 0.24 * 441.6667 and r.optim.head_lr == 0.24 * 5583.333
    assert (r.optim.bias_momentum, r.optim.weight_norm) == (0.85, True)
    assert "bias_lr_scale" not in r.model.options
    # version unknown (recipe.toml records none): read as the oldest, version 1
    assert recipe_from_dict(raw, stored=True) == r


def test_a_version_2_recipe_is_read_as_it_is():
    today = load_recipe("fast94").to_dict()
    assert migrate_stored(today, 2) is today
    assert recipe_from_dict(today, stored=True, version=2).to_dict() == today
    # No sniffing in format 2: the old options are not migrated but refused by name...
    with pytest.raises(RecipeError, match=r"^model.options.bias_lr_scale: optimiser policy moved"):
        recipe_from_dict(_old_fastnet(), stored=True, version=2)
    # ...and missing [optim] fields are their defaults, not the mark of an old fastnet.
    raw = copy.deepcopy(today)
    for key in ("weight_norm", "bias_lr", "head_lr", "bias_momentum"):
        del raw["optim"][key]
    v2 = recipe_from_dict(raw, stored=True, version=2).optim
    assert (v2.weight_norm, v2.bias_lr) == (False, None)
    v1 = recipe_from_dict(raw, stored=True, version=1).optim
    assert (v1.weight_norm, v1.bias_lr) == (True, 0.24 * 64.0)  # fastnet's old defaults


@pytest.mark.parametrize("version", [3, 99, "2", True])
def test_a_newer_or_bad_version_is_refused_in_one_line(version):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(load_recipe("fast94").to_dict(), stored=True, version=version)
    assert str(err.value) == (
        f"recipe stored in checkpoint format {version!r}, newer than this cifarlab (2); "
        f"upgrade cifarlab"
    )


def test_a_version_is_only_for_a_stored_recipe():
    with pytest.raises(TypeError):
        recipe_from_dict(load_recipe("fast94").to_dict(), version=2)


def test_a_checkpoint_of_a_newer_format_is_refused_in_one_line(tmp_path):
    path = tmp_path / "checkpoint.pt"
    payload = {"format": FORMAT, "format_version": 3, "model": {}, "recipe": {}, "step": 0}
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == (
        f"{path}: checkpoint format 3 is newer than this cifarlab (2); upgrade cifarlab"
    )


# --------------------------------------------------------------------------- a real v1 run


@pytest.fixture
def v1_run(tmp_path) -> Path:
    run = tmp_path / "v1_run"
    shutil.copytree(V1_RUN, run)
    return run


def _groups(recipe, model_state) -> list[dict]:
    model = create_model(recipe.model.name, **recipe.model.options)
    model.load_state_dict(model_state)
    groups = build_optimizer(recipe.optim, model).param_groups
    return [{k: g[k] for k in HYPER} for g in groups]


def test_the_v1_run_is_genuine():
    payload = load_checkpoint(V1_RUN / "checkpoint.pt")
    assert payload["format_version"] == 1 and payload["versions"]["cifarlab"] == "0.1.0"
    assert "weight_norm" not in payload["recipe"]["optim"]
    assert payload["recipe"]["model"]["options"]["bias_lr_scale"] == 441.6667
    assert (payload["step"], payload["total_steps"]) == (8, 16)
    assert json.loads((V1_RUN / "checkpoint.json").read_text())["format_version"] == 1


def test_a_v1_checkpoint_builds_the_optimizer_groups_it_was_trained_with():
    payload = load_checkpoint(V1_RUN / "checkpoint.pt")
    recipe = recipe_from_dict(payload["recipe"], stored=True, version=payload["format_version"])
    stored = [{k: g[k] for k in HYPER} for g in payload["optimizer"]["param_groups"]]
    for got, want in zip(_groups(recipe, payload["model"]), stored, strict=True):
        assert got == pytest.approx(want, rel=1e-12), (got, want)


def test_a_v1_run_evaluates(v1_run, capsys):
    assert main(["evaluate", str(v1_run), "--data-dir", "sample", "--device", "cpu"]) == 0
    evaluation = json.loads((v1_run / "evaluation/none/evaluation.json").read_text())
    # The old code's own `cifarlab evaluate` of this checkpoint: 13.60% of 500 test images; a
    # float kernel of another CPU may move an image or two.
    assert evaluation["count"] == 500
    assert evaluation["accuracy"] == pytest.approx(0.136, abs=2 / 500)


def _resume(run: Path, data, **changes) -> dict:
    return train(
        out_dir=run,
        resume=True,
        data=data,
        overrides=changes or None,
        allow_change=list(changes),
        progress=False,
        log=lambda s: None,
    )


def _hyper(payload: dict) -> list[dict]:
    return [{k: g[k] for k in HYPER} for g in payload["optimizer"]["param_groups"]]


def test_a_v1_run_resumes_in_todays_format(v1_run, sample_data):
    before = load_checkpoint(v1_run / "checkpoint.pt")
    metrics = _resume(v1_run, sample_data)
    after = load_checkpoint(v1_run / "checkpoint.pt")
    assert (after["step"], metrics["steps"]) == (16, 16)
    assert after["format_version"] == FORMAT_VERSION == 2
    assert json.loads((v1_run / "checkpoint.json").read_text())["format_version"] == 2
    # its recipe is stored in today's fields, read as it is, and so is recipe.toml
    recipe = recipe_from_dict(after["recipe"], stored=True, version=2)
    assert recipe.optim.weight_norm is True and "bias_lr_scale" not in recipe.model.options
    assert recipe.optim.bias_lr == 0.24 * 441.6667
    assert recipe_from_dict(RunDir(v1_run).recipe(), stored=True, version=2) == recipe
    # it trained on with the optimizer groups the old code trained with
    assert _hyper(after) == _hyper(before)
    # and the run, now version 2, trains on to a longer end
    _resume(v1_run, sample_data, **{"train.epochs": 3})
    assert load_checkpoint(v1_run / "checkpoint.pt")["step"] == 24


def test_a_v1_run_resumes_with_an_allowed_change(v1_run, sample_data):
    metrics = _resume(v1_run, sample_data, **{"train.epochs": 3})
    assert metrics["steps"] == 24
    assert load_checkpoint(v1_run / "checkpoint.pt")["recipe"]["train"]["epochs"] == 3.0
