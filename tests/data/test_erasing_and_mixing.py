"""Random erasing, mixup and cutmix as batch functions, against torchvision v2's definitions.

MixUp and CutMix are compared with ``torchvision.transforms.v2.MixUp`` / ``CutMix`` at the
same weight and box centre (their Beta draw and ``torch.randint`` replaced by fixed values):
identical images and targets. RandomErasing's box is a random draw with a loop of up to 10
tries per image in torchvision; ours draws the 10 tries for the whole batch at once, so the
two are compared as distributions (means of the box's height, width and area over many draws,
within 5 standard errors) and the erasing itself against ``v2.functional.erase``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import v2

from cifarlab.data import augment as A


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch(sample_data) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(sample_data.train_images[:12]).permute(0, 3, 1, 2).float() / 255
    return x.contiguous(), torch.from_numpy(sample_data.train_labels[:12]).long()


# --------------------------------------------------------------------------- random erasing


def test_erase_boxes_is_torchvisions_erase(batch):
    x, _ = batch
    top, left = torch.tensor([0, 5, 31] * 4), torch.tensor([3, 0, 20] * 4)
    height, width = torch.tensor([4, 32, 1] * 4), torch.tensor([10, 2, 12] * 4)
    got = A.erase_boxes(x, top, left, height, width)
    for i in range(len(x)):
        want = TF.erase(x[i], int(top[i]), int(left[i]), int(height[i]), int(width[i]), v=0.0)
        assert torch.equal(got[i], want), i


def test_each_image_is_kept_or_loses_one_black_box_of_the_allowed_shape(batch):
    x, _ = batch
    x = (x * 0.9 + 0.05).repeat(20, 1, 1, 1)  # no exact zeros before
    out = A.random_erasing(x, 0.5, gen(1))
    erased = 0
    for i in range(len(x)):
        zero = (out[i] == 0).all(dim=0)
        if not zero.any():
            assert torch.equal(out[i], x[i])
            continue
        erased += 1
        ys, xs = zero.nonzero(as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert h * w == len(ys)  # one filled rectangle
        assert torch.equal(out[i][:, ~zero], x[i][:, ~zero])  # the rest untouched
        # h, w = sqrt(area x ratio), sqrt(area / ratio) rounded, area 2-33% of 1,024 pixels:
        # h x w is that area within the rounding, (h + w) / 2 + 1/4
        slack = (h + w) / 2 + 0.25
        assert 0.02 * 1024 - slack <= h * w <= 0.33 * 1024 + slack, (h, w)
        assert h < 32 and w < 32
    assert abs(erased / len(x) - 0.5) < 0.12  # p = 0.5 of 240 images (sd 0.032)


def test_box_sizes_follow_torchvisions_random_erasing():
    n = 4000
    ours = A.random_erasing(torch.ones(n, 1, 32, 32), 1.0, gen(2))
    zero = ours[:, 0] == 0
    ours_h = zero.any(dim=2).sum(1).double()
    ours_w = zero.any(dim=1).sum(1).double()
    reference = v2.RandomErasing(p=1.0, value=0)
    torch.manual_seed(0)
    params = [reference.make_params([torch.ones(1, 32, 32)]) for _ in range(n)]
    theirs_h = torch.tensor([p["h"] if p["v"] is not None else 0 for p in params], dtype=float)
    theirs_w = torch.tensor([p["w"] if p["v"] is not None else 0 for p in params], dtype=float)
    for a, b in ((ours_h, theirs_h), (ours_w, theirs_w), (ours_h * ours_w, theirs_h * theirs_w)):
        se = math.sqrt(a.var() / n + b.var() / n)
        assert abs(a.mean() - b.mean()) < 5 * se, (a.mean(), b.mean())
    assert abs((ours_h == 0).double().mean() - (theirs_h == 0).double().mean()) < 0.02


def test_random_erasing_draws_on_the_generator_only(batch):
    x, _ = batch
    a, b, c = (A.random_erasing(x, 0.7, gen(s)) for s in (4, 4, 5))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- mixup and cutmix


class FixedBeta:
    def __init__(self, lam: float) -> None:
        self.lam = lam

    def sample(self, shape):
        return torch.tensor(self.lam)


@pytest.mark.parametrize("lam", [0.0, 0.13, 0.5, 0.87, 1.0])
def test_mixup_is_torchvisions_at_the_same_weight(batch, lam):
    x, y = batch
    reference = v2.MixUp(alpha=1.0, num_classes=10)
    reference._dist = FixedBeta(lam)
    want_x, want_y = reference(x, y)
    got_x, got_y = A.mixup(x, F.one_hot(y, 10).float(), torch.tensor(lam))
    assert torch.equal(got_x, want_x) and torch.equal(got_y, want_y)


@pytest.mark.parametrize("lam", [0.0, 0.13, 0.5, 0.87, 1.0])
@pytest.mark.parametrize("cx,cy", [(0, 0), (31, 31), (5, 20), (16, 16)])
def test_cutmix_is_torchvisions_at_the_same_weight_and_centre(batch, lam, cx, cy, monkeypatch):
    x, y = batch
    reference = v2.CutMix(alpha=1.0, num_classes=10)
    reference._dist = FixedBeta(lam)
    draws = iter([torch.tensor([cx]), torch.tensor([cy])])  # v2 draws r_x, then r_y
    with monkeypatch.context() as m:
        m.setattr(torch, "randint", lambda *a, **k: next(draws))
        want_x, want_y = reference(x, y)
    centre = torch.tensor(cy), torch.tensor(cx)
    got_x, got_y = A.cutmix(x, F.one_hot(y, 10).float(), torch.tensor(lam), *centre)
    assert torch.equal(got_x, want_x)  # the box pasted exactly
    torch.testing.assert_close(got_y, want_y, atol=1e-7, rtol=0)  # lam corrected to the box


def test_beta_draws_have_the_beta_mean_and_variance():
    for alpha in (0.2, 1.0, 4.0):
        g = gen(3)
        draws = torch.stack([A.sample_beta(alpha, g, "cpu") for _ in range(4000)]).double()
        assert ((draws >= 0) & (draws <= 1)).all()
        var = 1 / (4 * (2 * alpha + 1))
        assert abs(draws.mean() - 0.5) < 5 * math.sqrt(var / 4000)
        assert abs(draws.var() - var) < 0.15 * var


@pytest.mark.parametrize("alphas", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mix_batch_targets_are_distributions_over_the_two_labels(batch, alphas):
    x, y = batch
    mixed, targets = A.mix_batch(x, y, 10, gen(6), *alphas)
    assert mixed.shape == x.shape and targets.shape == (len(y), 10)
    torch.testing.assert_close(targets.sum(1), torch.ones(len(y)))
    partner = y.roll(1, 0)
    own = targets.gather(1, y[:, None]).squeeze(1)
    other = targets.gather(1, partner[:, None]).squeeze(1)
    same = y == partner
    torch.testing.assert_close(torch.where(same, own, own + other), torch.ones(len(y)))


def test_with_both_on_each_batch_is_mixup_or_cutmix_half_the_time(batch):
    x, y = batch
    cut = 0
    for seed in range(200):
        mixed, _ = A.mix_batch(x, y, 10, gen(seed), 0.8, 1.0)
        # cutmix: every pixel is exactly the image's own or its neighbour's
        if ((mixed == x) | (mixed == x.roll(1, 0))).all():
            cut += 1
    assert 70 <= cut <= 130  # p = 0.5 of 200 (sd 7); mixup alone almost never passes


def test_mix_batch_is_a_function_of_the_generator(batch):
    x, y = batch
    a, b, c = (A.mix_batch(x, y, 10, gen(s), 0.8, 1.0) for s in (9, 9, 10))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
