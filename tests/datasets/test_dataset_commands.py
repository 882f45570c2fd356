"""The dataset through the other commands (issue 31): `cifarlab data --dataset`, the report's
data section finding the runs' own dataset, CIFAR-100-C cached apart from CIFAR-10-C, and a
study over a non-default dataset loading that dataset. Data and run: conftest.py."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cifarlab.cli.main import main
from cifarlab.data import cifar10c
from cifarlab.data.cifar10c import corrupted_test_images
from cifarlab.report.inputs import find_data, read_inputs
from cifarlab.robustness import evaluate_corruptions
from cifarlab.studies.runner import run_study
from cifarlab.studies.spec import seed_study


def one_error_line(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cifarlab: error: ") and len(err.splitlines()) == 1, err
    return err


def test_data_command_explores_the_dataset_it_is_given(asked, capsys):
    capsys.readouterr()
    assert main(["data", "--dataset", "cifar100-coarse", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert asked[-1][0].name == "cifar100-coarse" and asked[-1][1] is None
    assert "dataset: cifar100-coarse (20 classes)" in out and "super19" in out
    assert main(["data", "--dataset", "cifar100-coarse", "--data-dir", "/x", "--no-figures"]) == 0
    assert asked[-1][1] == "/x"


def test_data_command_needs_data_dir_for_folders_and_locates_cifar10_only(capsys):
    err = one_error_line(capsys, ["data", "--dataset", "folder", "--no-figures"])
    assert "--dataset folder: name the image folders with --data-dir" in err
    err = one_error_line(capsys, ["data", "--dataset", "cifar100", "--locate"])
    assert "--locate finds CIFAR-10 only" in err


def test_data_command_brings_folders_to_the_size_asked_and_refuses_it_for_cifar(asked, capsys):
    # The fake loader refuses "folder" after recording what it was asked: a DataError, exit 2.
    one_error_line(
        capsys, ["data", "--dataset", "folder", "--data-dir", "/f", "--image-size", "48"]
    )
    assert asked[-1][0].name == "folder" and asked[-1][0].image_size == 48
    one_error_line(capsys, ["data", "--dataset", "folder", "--data-dir", "/f", "--no-figures"])
    assert asked[-1][0].image_size == 32  # a recipe's default
    err = one_error_line(capsys, ["data", "--dataset", "cifar100", "--image-size", "48"])
    assert "--image-size is for --dataset folder; cifar100's images are 32x32" in err
    err = one_error_line(
        capsys, ["data", "--dataset", "folder", "--data-dir", "/f", "--image-size", "4"]
    )
    assert "--image-size 4: give a side from 8 to 512 pixels" in err


def test_the_report_finds_the_runs_own_dataset(coarse_run, asked):
    runs, _ = read_inputs([coarse_run])
    info = runs[0].metrics["data"]
    data, why = find_data(info, runs, None)
    assert why is None and data.dataset == "cifar100-coarse" and len(data.classes) == 20
    assert asked[-1][0].name == "cifar100-coarse"
    data, why = find_data(info, runs, "/copy")  # --data-dir: the same dataset, read there
    assert why is None and asked[-1] == (asked[0][0], "/copy")


def test_cifar10_corruption_ids_are_unchanged_and_other_datasets_get_their_own(coarse):
    images, labels = coarse.test_images, coarse.test_labels
    digest = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    digest.update(images.tobytes())
    digest.update(labels.tobytes())
    assert cifar10c.test_set_id(images, labels) == digest.hexdigest()[:16]  # as every cached entry
    assert cifar10c.test_set_id(images, labels, "cifar10") == digest.hexdigest()[:16]
    ids = {
        cifar10c.test_set_id(images, labels, d) for d in ("cifar10", "cifar100", "cifar100-coarse")
    }
    assert len(ids) == 3


def test_cifar100_c_never_reads_a_cifar10_c_cell_of_the_same_pixels(coarse_run, coarse):
    images, labels = coarse.test_images, coarse.test_labels
    cifar10_cell = corrupted_test_images(
        images, "gaussian_noise", 1, test_id=cifar10c.test_set_id(images, labels)
    )
    lines: list[str] = []
    result = evaluate_corruptions(
        coarse_run,
        corruptions=["gaussian_noise"],
        severities=[1],
        data=coarse,
        device="cpu",
        progress=lines.append,
    )
    assert any(line.startswith("generating gaussian_noise severity 1") for line in lines), lines
    assert result["dataset"] == "cifar100-coarse"
    assert result["test_set"] == cifar10c.test_set_id(images, labels, "cifar100-coarse")
    # made by the same corruption: the same pixels (the cell is only cached apart)
    again = corrupted_test_images(images, "gaussian_noise", 1, test_id=result["test_set"])
    assert np.array_equal(again, cifar10_cell)


def test_a_study_over_another_dataset_loads_that_dataset(tmp_path, asked):
    overrides = {
        "train.epochs": 0.1,
        "train.eval_points": 1,
        "system.threads": 1,
        "data.dataset": "cifar100-coarse",
    }
    study = seed_study("seed-baseline", [0], overrides=overrides)
    run_study(study, tmp_path / "study", figures=False, log=lambda s: None)
    assert {spec.name for spec, _ in asked} == {"cifar100-coarse"}
    (metrics,) = (tmp_path / "study").rglob("metrics.json")
    m = json.loads(metrics.read_text())
    assert m["data"]["dataset"] == "cifar100-coarse" and len(m["classes"]) == 20
