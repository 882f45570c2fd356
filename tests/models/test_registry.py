"""Registry-wide tests: every registered model builds, runs, and learns on the sample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifarlab.errors import RecipeError
from cifarlab.models import count_parameters, create_model, list_models, register_model


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("seednet")(lambda **kw: None)


def test_unknown_model_names_the_choices():
    with pytest.raises(RecipeError, match="seednet"):
        create_model("no-such-net")


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_and_finite(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_a_few_steps_lower_the_loss_on_the_sample(name, sample_data):
    torch.manual_seed(0)
    model = create_model(name).train()
    # Big models (resnet18: 11M parameters) get fewer images and steps to keep CI short.
    n, steps = (32, 8) if count_parameters(model) > 2_000_000 else (64, 15)
    x = (
        torch.from_numpy(sample_data.train_images[:n])
        .permute(0, 3, 1, 2)
        .float()
        .div(255)
        .sub(0.5)
        .div(0.5)
    )
    y = torch.from_numpy(sample_data.train_labels[:n])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        model.eval()
        before = F.cross_entropy(model(x), y).item()
        model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = F.cross_entropy(model(x), y).item()
    assert after < before


def test_seednet_matches_the_report_architecture():
    m = create_model("seednet")
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 16, (3, 3), (1, 1)),
        (16, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
    ]
    assert (m.fc1.in_features, m.fc1.out_features, m.fc2.out_features) == (1024, 500, 10)
    # 3*16*9+16 + 16*32*9+32 + 32*64*9+64 + 1024*500+500 + 500*10+10
    assert count_parameters(m) == 541094


def test_seednet_improved_is_the_report_final_network():
    m = create_model("seednet-improved")
    assert all(
        p.ndim > 1 or isinstance(mod, torch.nn.BatchNorm2d)
        for mod in m.modules()
        for p in mod.parameters(recurse=False)
    )  # no biases outside BN
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert [b.num_features for b in bns] == [16, 32, 64]
    # batch norm comes right after each conv's ReLU, as the report's code places it
    kinds = [type(mod).__name__ for mod in m.features]
    assert kinds[:4] == ["Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d"]
    assert isinstance(m.drop, torch.nn.Dropout) and m.drop.p == 0.5
