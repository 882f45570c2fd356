"""Batch augmentations checked against their definitions (colour ops against torchvision v2)."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from cifarlab.data import augment as A


@pytest.fixture
def batch(sample_data):
    x = torch.from_numpy(sample_data.train_images[:16]).permute(0, 3, 1, 2).float() / 255
    return x.contiguous()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (A.adjust_brightness, TF.adjust_brightness),
        (A.adjust_contrast, TF.adjust_contrast),
        (A.adjust_saturation, TF.adjust_saturation),
    ],
)
def test_colour_ops_match_torchvision_per_image(batch, ours, theirs):
    factors = torch.linspace(0.0, 1.8, batch.shape[0])
    got = ours(batch.clone(), factors)
    for i, f in enumerate(factors.tolist()):
        want = theirs(batch[i], f)
        torch.testing.assert_close(got[i], want, atol=1e-6, rtol=0)


def test_color_jitter_factors_are_per_image_and_in_range(batch):
    same = batch[:1].expand(8, -1, -1, -1).contiguous()
    out = A.color_jitter(same, gen(), brightness=0.2)
    ratio = out.sum(dim=(1, 2, 3)) / same.sum(dim=(1, 2, 3))
    assert len(set(ratio.round(decimals=4).tolist())) == 8  # one factor per image
    # brightness without clamping scales the image: factor within [0.8, 1.2]
    assert ratio.min() >= 0.8 - 1e-4 and ratio.max() <= 1.2 + 1e-4


def test_flip_mirrors_exactly_the_masked_images(batch):
    out = A.flip_lr(batch, gen(3))
    flipped = [torch.equal(out[i], batch[i].flip(-1)) for i in range(len(batch))]
    kept = [torch.equal(out[i], batch[i]) for i in range(len(batch))]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < len(batch)


def test_translate_is_a_crop_of_the_padded_image(batch):
    pad = 2
    out = A.random_translate(batch, pad, gen(1), mode="zeros")
    padded = torch.nn.functional.pad(batch, (pad,) * 4)
    for i in range(len(batch)):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 32, dx : dx + 32])
        ]
        assert matches, f"image {i} is not a crop of its padded copy"
    assert not torch.equal(out, batch)


def test_cutout_zeroes_one_square_per_image(batch):
    x = batch + 0.01  # no exact zeros before
    out = A.cutout(x, 8, gen(2))
    zero = (out == 0).all(dim=1)  # (N, H, W)
    for i in range(len(x)):
        ys, xs = zero[i].nonzero(as_tuple=True)
        assert 0 < len(ys) <= 64
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert h * w == len(ys)  # a filled rectangle (the square clipped by the border)


def test_same_generator_seed_same_batch(batch):
    from cifarlab.recipe import AugmentConfig

    cfg = AugmentConfig(
        flip=True,
        translate=2,
        brightness=0.2,
        contrast=0.2,
        saturation=0.2,
        cutout=4,
        trivial_augment=True,
        random_erasing=0.5,
    )
    a = A.augment_batch(batch, cfg, gen(7))
    b = A.augment_batch(batch, cfg, gen(7))
    c = A.augment_batch(batch, cfg, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_options_that_are_off_draw_nothing_from_the_generator(batch):
    from cifarlab.recipe import AugmentConfig

    # The regularisers of issue 17 off (their defaults): the generator ends where the older
    # options alone leave it, so recipes without them get the batches they always got.
    g1, g2 = gen(11), gen(11)
    A.augment_batch(batch, AugmentConfig(flip=True, translate=2, brightness=0.2), g1)
    A.color_jitter(A.random_translate(A.flip_lr(batch, g2), 2, g2), g2, brightness=0.2)
    assert torch.equal(g1.get_state(), g2.get_state())
