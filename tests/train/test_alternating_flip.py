"""augment.flip_alternate (airbench's alternating flip): each training image is mirrored in every
other epoch, at random only in the first, instead of by a fresh coin every epoch."""

from __future__ import annotations

import pytest
import torch

from cifarlab.data.batches import alternating_flips
from cifarlab.recipe import RecipeError, load_recipe
from cifarlab.train import loop
from cifarlab.train.loop import train


def test_the_pattern_alternates_and_is_fixed_by_the_seed():
    n = 1000
    idx = torch.arange(n)
    e0, e1, e2 = (alternating_flips(idx, n, seed=3, epoch=e) for e in range(3))
    assert (e0 ^ e1).all() and torch.equal(e0, e2)
    assert 0.4 < e0.float().mean() < 0.6  # a fair coin per image in the first epoch
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    assert torch.equal(alternating_flips(perm, n, seed=3, epoch=1), e1[perm])  # per image
    assert not torch.equal(alternating_flips(idx, n, seed=4, epoch=0), e0)


def test_training_mirrors_each_image_in_exactly_one_of_two_epochs(
    tmp_path, sample_data, monkeypatch
):
    seen = []  # (image bytes, mirrored) for every image of every batch, in order
    real = loop.augment_batch

    def record(x, cfg, gen, flips=None):
        out = real(x, cfg, gen, flips)
        for a, b in zip(x, out, strict=True):
            assert torch.equal(b, a) or torch.equal(b, a.flip(-1))  # flip only: no translation
            seen.append((a.numpy().tobytes(), not torch.equal(b, a)))
        return out

    monkeypatch.setattr(loop, "augment_batch", record)
    overrides = {
        "augment.flip_alternate": True,
        "augment.translate": 0,
        "model.options.widths": [8, 16, 16],
        "train.epochs": 2,
        "train.batch_size": 1000,  # 2 steps per epoch over the sample's 2,000 images
        "train.resolutions": [],
        "train.resolution_milestones": [],
        "data.val_fraction": 0.0,
        "eval.tta": "none",
        "system.threads": 1,
    }
    train(
        "cpu93",
        out_dir=tmp_path / "run",
        data=sample_data,
        overrides=overrides,
        progress=False,
        log=lambda s: None,
    )
    first, second = dict(seen[:2000]), dict(seen[2000:])
    assert len(first) == len(second) == 2000 and first.keys() == second.keys()
    assert all(first[k] != second[k] for k in first)  # a random flip: about half would match
    assert 0.4 < sum(first.values()) / 2000 < 0.6


def test_alternating_without_the_flip_is_refused_by_name():
    with pytest.raises(RecipeError, match=r"augment\.flip_alternate"):
        load_recipe("seed-baseline", {"augment.flip_alternate": True})
