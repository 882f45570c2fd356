"""TrivialAugmentWide as a batch function, checked against torchvision v2 operation by operation.

Reference: ``torchvision.transforms.v2.TrivialAugmentWide._apply_image_or_video_transform``,
the function that maps (operation, magnitude) to torchvision's v2 functionals, called on one
float image at a time. Tolerances, measured on the sample at every bin and sign:

- geometric operations (nearest, fill 0), brightness, posterize, solarize, autocontrast and
  equalize: identical (atol 0);
- color (saturation), contrast and sharpness blends: within 1e-6 (float rounding of the blend:
  torchvision's in-place ``add_(alpha=...)`` fuses a multiply-add; measured at most 1.8e-7).

torchvision's TrivialAugmentWide documents uint8 tensors as its input. On uint8 every colour
operation rounds or truncates to whole levels, so our float results differ from its uint8
ones by at most 2/255 (measured: 1.98 levels, saturation); posterize's uint8 rule masks the
low bits of the 0-255 value (v & ~(2^(8-b) - 1)) where the float rule is floor(x 2^b) / 2^b,
within 1/255 of each other; equalize works on uint8 in both (its float input is quantised
as x * 255.999, truncated), so it is identical; solarize and the geometric ones are identical.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import TrivialAugmentWide

from cifarlab.data import augment as A

TV_NAMES = {
    "identity": "Identity",
    "shear_x": "ShearX",
    "shear_y": "ShearY",
    "translate_x": "TranslateX",
    "translate_y": "TranslateY",
    "rotate": "Rotate",
    "brightness": "Brightness",
    "color": "Color",
    "contrast": "Contrast",
    "sharpness": "Sharpness",
    "posterize": "Posterize",
    "solarize": "Solarize",
    "autocontrast": "AutoContrast",
    "equalize": "Equalize",
}
BLENDS = {"color", "contrast", "sharpness"}
REFERENCE = TrivialAugmentWide()  # 31 bins, nearest, fill None (zeros)


def reference(image: torch.Tensor, op: str, magnitude: float) -> torch.Tensor:
    """torchvision v2's TrivialAugmentWide operation ``op`` at ``magnitude`` on one image."""
    return REFERENCE._apply_image_or_video_transform(
        image, TV_NAMES[op], magnitude, interpolation=REFERENCE.interpolation, fill=REFERENCE._fill
    )


def magnitudes(op: str) -> list[float]:
    """Every magnitude TrivialAugmentWide can give ``op``: each bin, with both signs if signed."""
    table, signed = A.TRIVIAL_AUGMENT_SPACE[op]
    values = [0.0] if table is None else table(A.TRIVIAL_AUGMENT_BINS, "cpu").tolist()
    return values + [-v for v in values if v] if signed else values


@pytest.fixture(scope="module")
def images(sample_data) -> torch.Tensor:
    u8 = torch.from_numpy(sample_data.train_images[:6]).permute(0, 3, 1, 2).contiguous()
    return u8


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_space_is_torchvisions_wide_space():
    assert A.TRIVIAL_AUGMENT_OPS == tuple(TV_NAMES)
    space = TrivialAugmentWide._AUGMENTATION_SPACE
    assert list(space) == list(TV_NAMES.values())
    for op, name in TV_NAMES.items():
        theirs, their_sign = space[name]
        ours, our_sign = A.TRIVIAL_AUGMENT_SPACE[op]
        assert our_sign == their_sign, op
        want = theirs(31, 32, 32)
        if want is None:
            assert ours is None, op
        else:
            assert torch.equal(ours(31, "cpu").to(want.dtype), want), op


@pytest.mark.parametrize("op", A.TRIVIAL_AUGMENT_OPS)
def test_each_operation_matches_torchvision_v2_at_every_magnitude(op, images):
    x = images.float() / 255
    atol = 1e-6 if op in BLENDS else 0.0
    for m in magnitudes(op):
        got = A.trivial_augment_op(op, x, torch.full((len(x),), m))
        # torchvision's functionals take a batch with one magnitude: each image as on its own
        want = reference(x, op, m)
        torch.testing.assert_close(got, want, atol=atol, rtol=0, msg=f"{op} at {m}")


@pytest.mark.parametrize("op", sorted(set(A.TRIVIAL_AUGMENT_OPS) - {"identity"}))
def test_float_results_are_within_two_levels_of_torchvision_on_uint8(op, images):
    x = images.float() / 255
    levels = {"posterize": 1, "equalize": 0, "solarize": 0}.get(op, 2)
    for m in magnitudes(op)[::5]:
        got = A.trivial_augment_op(op, x, torch.full((len(x),), m))
        want = reference(images, op, m).float() / 255
        assert (got - want).abs().max() <= levels / 255 + 1e-6, f"{op} at {m}"


def test_rotations_by_right_angles_are_torchvisions_rot90_shortcut(images):
    x = images.float() / 255
    for degrees, k in ((90.0, 1), (-90.0, 3), (180.0, 2), (0.0, 0)):
        got = A.rotate(x, torch.full((len(x),), degrees))
        assert torch.equal(got, torch.rot90(x, k=k, dims=(-2, -1))), degrees


def test_trivial_augment_applies_its_plan_image_by_image(images):
    x = (images.float() / 255).repeat(8, 1, 1, 1)  # 48 images: most operations appear
    out = A.trivial_augment(x, gen(3))
    plan = A.trivial_augment_plan(len(x), gen(3), x.device)
    covered = torch.zeros(len(x), dtype=torch.int64)
    for op, idx, magnitude in plan:
        for i, m in zip(idx.tolist(), magnitude.tolist(), strict=True):
            atol = 1e-6 if op in BLENDS else 0.0
            torch.testing.assert_close(out[i], reference(x[i], op, m), atol=atol, rtol=0)
            covered[i] += 1
    assert covered.tolist() == [1] * len(x)  # every image exactly one operation
    assert len({op for op, idx, _ in plan if len(idx)}) >= 10


def test_operations_bins_and_signs_are_uniform():
    n = 14 * 2000
    plan = A.trivial_augment_plan(n, gen(5), "cpu")
    counts = torch.tensor([len(idx) for _, idx, _ in plan], dtype=torch.float64)
    expected = n / 14
    sd = (n * (1 / 14) * (13 / 14)) ** 0.5
    assert ((counts - expected).abs() < 5 * sd).all(), counts.tolist()
    # bins of a signed operation: every one of the 31 appears, each sign about half the time
    _, idx, magnitude = next(p for p in plan if p[0] == "rotate")
    bins = (magnitude.abs() / 4.5).round().long()  # rotate: bin b is 4.5 b degrees
    assert set(bins.tolist()) == set(range(31))
    assert abs((magnitude < 0).double().mean() - 0.5 * 30 / 31) < 0.05  # bin 0 has no sign
    assert sorted({p for p in plan[0][2].tolist()}) == [0.0]  # identity: no magnitude


def test_same_seed_same_batch_and_other_seed_differs(images):
    x = images.float() / 255
    a, b, c = (A.trivial_augment(x, gen(s)) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
