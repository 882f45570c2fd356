"""Progressive resizing (train.resolutions / train.resolution_milestones): training images at a
lower size early, the native 32x32 later, evaluation always at 32x32; sizes a model cannot take
refused before training, with one line naming the field."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cifarlab.data.augment import resize_batch, resolution_at
from cifarlab.recipe import RecipeError, load_recipe
from cifarlab.train import loop
from cifarlab.train.loop import train


def test_the_size_follows_the_milestones():
    sizes, marks = [16, 24, 32], [0.3, 0.7]
    got = [resolution_at(f, sizes, marks) for f in (0.0, 0.29, 0.3, 0.69, 0.7, 0.999)]
    assert got == [16, 16, 24, 24, 32, 32]
    assert resolution_at(0.5, [], []) is None


def test_resize_batch_shrinks_and_keeps_a_flat_image_flat():
    x = torch.full((2, 3, 32, 32), 0.25)
    y = resize_batch(x, 16)
    assert y.shape == (2, 3, 16, 16)
    assert torch.allclose(y, torch.full_like(y, 0.25))
    assert resize_batch(x, None) is x and resize_batch(x, 32) is x


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"train.resolutions": [40]}, "train.resolutions"),
        ({"train.resolutions": [4, 32], "train.resolution_milestones": [0.5]}, "train.resolutions"),
        ({"train.resolutions": [16, 32]}, "train.resolution_milestones"),
        (
            {"train.resolutions": [16, 24, 32], "train.resolution_milestones": [0.6, 0.3]},
            "train.resolution_milestones",
        ),
        (
            {"train.resolutions": [16, 32], "train.resolution_milestones": [1.0]},
            "train.resolution_milestones",
        ),
    ],
)
def test_bad_schedules_are_refused_by_name(overrides, field):
    with pytest.raises(RecipeError, match=field.replace(".", r"\.")):
        load_recipe("fast94", overrides)


def test_fastnet_trains_small_first_and_tests_at_full_size(tmp_path, sample_data, monkeypatch):
    """Half the steps see 16x16 images, the rest 32x32; the run still learns."""
    seen = []
    real = loop.resize_batch

    def record(x, size):
        out = real(x, size)
        seen.append(tuple(out.shape[-2:]))
        return out

    monkeypatch.setattr(loop, "resize_batch", record)
    out = tmp_path / "run"
    overrides = {
        "model.options.widths": [16, 32, 32],
        "train.epochs": 4,  # 4 steps of 2000: the sample's 2,000 training images
        "data.val_fraction": 0.0,
        "train.resolutions": [16, 32],
        "train.resolution_milestones": [0.5],
        "eval.tta": "none",
        "system.threads": 1,
    }
    metrics = train(
        "fast94",
        out_dir=out,
        data=sample_data,
        overrides=overrides,
        progress=False,
        log=lambda s: None,
    )
    steps = len(seen)
    assert steps == 4
    assert seen == [(16, 16)] * 2 + [(32, 32)] * 2
    assert metrics["test_accuracy"] > 0.15, metrics["test_accuracy"]  # chance: 0.10
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["test_accuracy"] == metrics["test_accuracy"]


def test_a_model_that_cannot_take_the_size_is_refused_before_training(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "cifarlab",
            "train",
            "--recipe",
            "seed-baseline",
            "--data-dir",
            "sample",
            "--set",
            "train.resolutions=[16]",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.resolutions: model seednet cannot take 16x16" in lines[0]
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
