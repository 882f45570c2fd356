"""The CIFAR ResNet family of He et al. 2016 (section 4.2): depth 6n + 2, parameter counts as
the paper's Table 6, and the plain (shortcut-free) twins of its figure 6."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cifarlab.errors import RecipeError
from cifarlab.models import count_parameters, create_model

# name -> (n blocks per stage, parameters in the paper's Table 6, in millions)
FAMILY = {"resnet20": (3, 0.27), "resnet56": (9, 0.85)}


def _weighted_layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


@pytest.mark.parametrize("name", sorted(FAMILY))
@pytest.mark.parametrize("plain", [False, True])
def test_depth_and_parameters_follow_the_paper(name, plain):
    n, millions = FAMILY[name]
    model = create_model(name, plain=plain)
    # 6n + 2 weighted layers: the first conv, 2n convs in each of 3 stages, the classifier;
    # option A shortcuts add none.
    assert _weighted_layers(model) == 6 * n + 2
    assert round(count_parameters(model) / 1e6, 2) == millions


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_a_plain_net_has_its_residual_twin_s_parameters(name):
    torch.manual_seed(0)
    residual = create_model(name)
    torch.manual_seed(0)
    plain = create_model(name, plain=True)
    a, b = residual.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _zero_last_norm_of_every_block(model: nn.Module) -> None:
    with torch.no_grad():
        for block in model.layers:
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_only_the_residual_net_carries_its_input_through_dead_blocks(name):
    # With every block's residual branch silenced (last BN scaled to 0), a residual net is its
    # shortcuts: the stem's output, subsampled and zero-padded to 64 channels at 8x8. A plain
    # net has no path left: all zeros.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for plain in (False, True):
        model = create_model(name, plain=plain).eval()
        _zero_last_norm_of_every_block(model)
        with torch.no_grad():
            stem = model.stem(x)
            out = model.layers(stem)
        if plain:
            assert torch.count_nonzero(out) == 0
        else:
            expected = torch.zeros(2, 64, 8, 8)
            expected[:, 24:40] = stem[:, :, ::4, ::4]  # 16 channels, padded 8+8 then 16+16
            torch.testing.assert_close(out, expected)


def test_plain_must_be_a_boolean():
    with pytest.raises(RecipeError, match="plain must be true or false"):
        create_model("resnet20", plain="yes")
