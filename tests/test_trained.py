"""The one trained-model reader (cifarlab.trained): every command that reads a checkpoint
(evaluate, evaluate --corruptions, predict, export) answers a bad one in one
``cifarlab: error:`` line naming the file, with exit status 2, and writes nothing."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from cifarlab.cli.main import main
from cifarlab.models import create_model
from cifarlab.rundir import CHECKPOINT, load_checkpoint


@pytest.fixture
def run(sample_run, tmp_path):
    """A copy of a real tiny run on the bundled sample, whose checkpoint a test may spoil."""
    dst = tmp_path / "run"
    shutil.copytree(sample_run("seed-baseline"), dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


@pytest.fixture
def picture(tmp_path, sample_data):
    path = tmp_path / "picture.png"
    Image.fromarray(sample_data.test_images[0]).save(path)
    return path


def _reshaped(payload):
    """One layer's weights one row longer than the model's (weights of another model)."""
    name = next(k for k, v in payload["model"].items() if v.dim() >= 2)
    w = payload["model"][name]
    payload["model"][name] = torch.zeros(w.shape[0] + 1, *w.shape[1:])
    return name


def _missing(payload):
    name = next(iter(payload["model"]))
    del payload["model"][name]
    return name


def _five_class_names(payload):
    """Five class names for weights of ten classes."""
    payload["classes"] = payload["classes"][:5]
    return "5 classes"


def _classes_not_names(payload):
    payload["classes"] = 7
    return "'classes'"


def _recipe_that_does_not_load(payload):
    payload["recipe"]["model"]["name"] = "resnet9000"
    return "resnet9000"


SPOILED = {
    "mismatched weights": _reshaped,
    "missing weights": _missing,
    "wrong class count": _five_class_names,
    "classes that are not names": _classes_not_names,
    "a recipe that does not load": _recipe_that_does_not_load,
}


def _commands(run, picture, tmp_path):
    data = ["--data-dir", "sample", "--device", "cpu"]
    return {
        "evaluate": ["evaluate", str(run), *data],
        "evaluate --corruptions": [
            "evaluate",
            str(run),
            "--corruptions",
            "fog",
            "--severities",
            "1",
            *data,
        ],
        "predict": ["predict", str(run), str(picture)],
        "export": ["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "x")],
    }


def _files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _one_error_line(argv, ckpt, capsys, *wanted):
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("cifarlab: error: "), err
    assert str(ckpt) in lines[0] and all(w in lines[0] for w in wanted), lines[0]
    assert out == "", out  # nothing printed as if it had worked
    return lines[0]


@pytest.mark.parametrize("command", ["evaluate", "evaluate --corruptions", "predict", "export"])
@pytest.mark.parametrize("spoil", list(SPOILED))
def test_a_bad_checkpoint_is_one_error_line_in_every_command(
    run, picture, tmp_path, capsys, command, spoil
):
    ckpt = run / CHECKPOINT
    payload = load_checkpoint(ckpt)
    wanted = SPOILED[spoil](payload)
    torch.save(payload, ckpt)
    before = _files(run)
    argv = _commands(run, picture, tmp_path)[command]
    _one_error_line(argv, ckpt, capsys, wanted)
    assert _files(run) == before
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["evaluate", "evaluate --corruptions"])
def test_a_model_of_other_classes_than_the_data_is_one_error_line(
    run, picture, tmp_path, capsys, command
):
    ckpt = run / CHECKPOINT
    payload = load_checkpoint(ckpt)
    payload.pop("train_model", None)
    name = payload["recipe"]["model"]["name"]
    options = payload["recipe"]["model"].get("options", {})
    payload["model"] = create_model(name, num_classes=5, **options).state_dict()
    payload["classes"] = payload["classes"][:5]
    torch.save(payload, ckpt)
    before = _files(run)
    argv = _commands(run, picture, tmp_path)[command]
    _one_error_line(argv, ckpt, capsys, "5 classes", "has 10")
    assert _files(run) == before
