"""Recipe checks of data.dataset and what follows from it (issue 31): a folder dataset's
location, the up-front run length by dataset, augment and resolution bounds by image size."""

from __future__ import annotations

import pytest

from cifarlab.data.datasets import DatasetSpec
from cifarlab.data.folders import NO_FOLDER
from cifarlab.data.tensors import load_data_for
from cifarlab.errors import DataError, RecipeError
from cifarlab.recipe import load_recipe

FOLDER = {"data.dataset": "folder", "data.source": "/some/images"}


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert len(text.splitlines()) == 1, text
    return text


def test_a_folder_dataset_has_no_bundled_sample():
    with pytest.raises(RecipeError) as exc:
        load_recipe("seed-baseline", {"data.dataset": "folder", "data.source": "sample"})
    assert one_line(exc).startswith("data.source: ") and "no bundled sample" in str(exc.value)
    assert load_recipe("seed-baseline", FOLDER).data.source == "/some/images"


def test_a_folder_dataset_without_a_location_is_refused_at_load_time_naming_data_dir():
    spec = DatasetSpec("folder")
    with pytest.raises(DataError) as exc:
        load_data_for("auto", None, lambda s: None, spec=spec)
    assert one_line(exc) == NO_FOLDER and "--data-dir" in NO_FOLDER and "data.source" in NO_FOLDER


def test_the_up_front_run_length_check_covers_cifar100_and_leaves_folders_to_the_data():
    long = {"train.max_steps": 100, "train.epochs": 1}  # 40,000 / 512 = 79 steps per epoch
    for name in ("cifar100", "cifar100-coarse"):
        with pytest.raises(RecipeError) as exc:
            load_recipe("seed-baseline", {**long, "train.epochs": 2, "data.dataset": name})
        assert one_line(exc).startswith("train.epochs: ") and "CIFAR-100's 40,000" in str(exc.value)
    with pytest.raises(RecipeError, match="CIFAR-10's 40,000"):
        load_recipe("seed-baseline", {**long, "train.epochs": 2})
    # a folder's size is unknown until read: check_run_length checks it then
    assert load_recipe("seed-baseline", {**long, "train.epochs": 2, **FOLDER}).train.epochs == 2


def test_translate_cutout_and_resolutions_are_bounded_by_the_image_size():
    big = {**FOLDER, "data.image_size": 64}
    recipe = load_recipe(
        "seed-baseline",
        {
            **big,
            "augment.translate": 40,
            "augment.cutout": 48,
            "train.resolutions": [48, 64],
            "train.resolution_milestones": [0.5],
        },
    )
    assert recipe.augment.translate == 40 and recipe.train.resolutions == [48, 64]
    with pytest.raises(RecipeError) as exc:
        load_recipe("seed-baseline", {"augment.translate": 40})
    assert one_line(exc).startswith("augment.translate: must be in [0, 31] pixels")
    with pytest.raises(RecipeError) as exc:
        load_recipe("seed-baseline", {**big, "augment.translate": 64})
    assert one_line(exc).startswith("augment.translate: must be in [0, 63] pixels")
    with pytest.raises(RecipeError) as exc:
        load_recipe("seed-baseline", {**big, "augment.cutout": 65})
    assert one_line(exc).startswith("augment.cutout: must be in [0, 64] pixels")
    with pytest.raises(RecipeError) as exc:
        load_recipe(
            "seed-baseline", {"train.resolutions": [24, 48], "train.resolution_milestones": [0.5]}
        )
    assert one_line(exc).startswith("train.resolutions: training image sizes must be 8 to 32")


def test_normalize_train_beside_a_recipe_mean_and_std_is_accepted():
    recipe = load_recipe(
        "seed-baseline",
        {"data.normalize": "train", "data.mean": [0.4, 0.4, 0.4], "data.std": [0.2, 0.2, 0.2]},
    )
    assert recipe.data.normalize == "train"


def test_the_recipe_and_the_data_command_offer_the_data_layer_s_datasets():
    from cifarlab.cli.main import build_parser
    from cifarlab.data.datasets import DATASETS
    from cifarlab.recipe.schema import DATASETS as RECIPE_DATASETS

    assert RECIPE_DATASETS == DATASETS
    data_cmd = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices["data"]._actions
        if "--dataset" in a.option_strings
    )
    assert tuple(data_cmd.choices) == DATASETS and data_cmd.default == "cifar10"
