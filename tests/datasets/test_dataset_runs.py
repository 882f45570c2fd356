"""A run on another dataset, through every command that reads it back (issue 31): what the
run records, evaluate (its own dataset reloaded from its recipe, --data-dir, a class-count
mismatch), resume on other data, predict's class names, export's classes and normalisation.

The data and the run: conftest.py (the sample relabelled into 20 classes, as
"cifar100-coarse").
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from cifarlab.cli.main import main
from cifarlab.data.readers import LabelledImages
from cifarlab.data.tensors import channel_stats
from cifarlab.errors import CheckpointError, DataError
from cifarlab.evaluate import evaluate
from cifarlab.rundir import load_checkpoint
from cifarlab.train.loop import train
from cifarlab.trained import load_trained_model

QUIET = {"progress": False, "log": lambda s: None}
COARSE = {
    "train.epochs": 0.2,
    "train.eval_points": 1,
    "system.threads": 1,
    "data.dataset": "cifar100-coarse",
    "data.normalize": "train",
}  # as conftest's run


def test_the_run_records_its_dataset_classes_spec_and_training_normalisation(coarse_run, coarse):
    ckpt = load_checkpoint(coarse_run)
    metrics = json.loads((coarse_run / "metrics.json").read_text())
    mean, std = channel_stats(coarse.train_images, _train_index(coarse))
    for record in (ckpt, metrics):
        assert record["classes"] == list(coarse.classes)
        assert record["normalization"] == {"mean": mean, "std": std}
        assert record["data"]["dataset"] == "cifar100-coarse"
        assert record["data"]["dataset_spec"] == {
            "name": "cifar100-coarse",
            "image_size": 32,
            "split_seed": 42,
            "test_fraction": 0.2,
        }
    assert mean != [0.5, 0.5, 0.5]  # the training split's own, not the recipe's


def _train_index(data: LabelledImages) -> np.ndarray:
    from cifarlab.data.split import split_train_val

    return split_train_val(data.train_labels, 0.2, 42)[0]


def test_the_data_given_must_be_the_recipe_s_dataset(tmp_path, sample_data):
    with pytest.raises(DataError) as exc:
        train("seed-baseline", out_dir=tmp_path / "r", data=sample_data, overrides=COARSE, **QUIET)
    assert str(exc.value).startswith("data.dataset: the recipe says 'cifar100-coarse'")
    assert len(str(exc.value).splitlines()) == 1 and not (tmp_path / "r").exists()


def test_evaluate_reloads_the_run_s_own_dataset_and_its_recorded_normalisation(
    coarse_run, asked, capsys
):
    metrics = json.loads((coarse_run / "metrics.json").read_text())
    result = evaluate(coarse_run, device="cpu")
    assert [s.name for s, _ in asked] == ["cifar100-coarse"]  # the run's, from its recipe
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert list(result["per_class_accuracy"]) == metrics["classes"]
    trained = load_trained_model(coarse_run)
    assert [trained.mean, trained.std] == list(metrics["normalization"].values())
    # --data-dir names the dataset's copy: the run's dataset read from there
    assert (
        main(["evaluate", str(coarse_run), "--data-dir", str(coarse_run), "--device", "cpu"]) == 0
    )
    assert asked[-1] == (asked[0][0], str(coarse_run))
    assert "super" in capsys.readouterr().out


def test_evaluate_refuses_data_of_another_class_count_in_one_line(coarse_run, sample_data):
    with pytest.raises(CheckpointError) as exc:
        evaluate(coarse_run, data=sample_data, device="cpu")
    text = str(exc.value)
    assert "tells 20 classes apart and the data" in text and len(text.splitlines()) == 1


def test_resume_refuses_other_data_by_fingerprint(tmp_path, coarse, sample_data):
    out = tmp_path / "run"
    train(
        "seed-baseline",
        out_dir=out,
        data=coarse,
        overrides={**COARSE, "train.epochs": 0.1},
        **QUIET,
    )
    # the same labels and split under another dataset's name: not the run's data
    other = replace(coarse, dataset="cifar100-coarse", classes=tuple(f"x{i}" for i in range(20)))
    with pytest.raises(CheckpointError, match="trained on other data") as exc:
        train(
            "seed-baseline",
            out_dir=out,
            data=other,
            overrides={**COARSE, "train.epochs": 0.2},
            resume=True,
            allow_change=("train.epochs",),
            **QUIET,
        )
    assert len(str(exc.value).splitlines()) == 1


def test_predict_prints_the_run_s_class_names(coarse_run, coarse, tmp_path, capsys):
    for i in range(2):
        Image.fromarray(coarse.test_images[i]).save(tmp_path / f"img{i}.png")
    capsys.readouterr()
    assert main(["predict", str(coarse_run), str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "super" in out and "airplane" not in out


def test_export_metadata_holds_the_run_s_classes_and_training_normalisation(coarse_run):
    from cifarlab.export import metadata

    metrics = json.loads((coarse_run / "metrics.json").read_text())
    meta = metadata(load_trained_model(coarse_run))
    assert meta["classes"] == metrics["classes"] and meta["dataset"] == "cifar100-coarse"
    assert [meta["mean"], meta["std"]] == list(metrics["normalization"].values())
    assert meta["normalize"] == "train" and meta["output"]["shape"] == ["N", 20]
    assert meta["input"]["shape"] == ["N", 3, 32, 32]


def test_predict_and_export_take_the_run_s_image_size(coarse_run, coarse, tmp_path):
    from cifarlab.export import _example_input, metadata
    from cifarlab.predict import read_image

    Image.fromarray(coarse.test_images[0]).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").shape == (32, 32, 3)
    assert read_image(tmp_path / "a.png", 64).shape == (64, 64, 3)
    trained = load_trained_model(coarse_run)
    trained.recipe.data.image_size = 64  # as a folder run of 64-pixel images records it
    meta = metadata(trained)
    assert meta["input"]["shape"] == ["N", 3, 64, 64]
    assert tuple(_example_input(meta).shape) == (2, 3, 64, 64)


def test_corruptions_refuse_images_other_than_32_pixels_in_one_line(coarse_run, coarse):
    from cifarlab.robustness import RobustnessError, evaluate_corruptions

    big = replace(
        coarse,
        train_images=coarse.train_images.repeat(2, axis=1).repeat(2, axis=2),
        test_images=coarse.test_images.repeat(2, axis=1).repeat(2, axis=2),
    )
    with pytest.raises(RobustnessError) as exc:
        evaluate_corruptions(
            coarse_run, corruptions=["fog"], severities=[1], data=big, device="cpu"
        )
    assert "defined for 32x32 images" in str(exc.value) and "64x64" in str(exc.value)
    assert len(str(exc.value).splitlines()) == 1
