"""Registry-wide tests: every registered model builds, runs, keeps the model protocol, and learns
on the sample; the registry refuses a model outside the protocol."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cifarlab.errors import RecipeError
from cifarlab.models import (
    ROLES,
    CifarModel,
    ModelProtocol,
    count_parameters,
    create_model,
    list_models,
    register_model,
    registry,
)


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("seednet")(lambda **kw: None)


def test_unknown_model_names_the_choices():
    with pytest.raises(RecipeError, match="seednet"):
        create_model("no-such-net")


@pytest.mark.parametrize("name", list_models())
def test_every_model_keeps_the_protocol(name):
    model = create_model(name)
    assert isinstance(model, CifarModel) and isinstance(model, ModelProtocol)
    roles = model.parameter_roles()
    assert roles and set(roles) <= set(ROLES)
    in_roles = [p for params in roles.values() for p in params]
    assert len({id(p) for p in in_roles}) == len(in_roles)  # no parameter in two roles
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable <= {id(p) for p in in_roles}  # every trainable parameter has a role
    # The loop calls both hooks on every model, with no hasattr.
    model.init_from_data(torch.randn(8, 3, 32, 32))
    model.after_step(0, 10)
    model.after_step(1, 10)


def _grad_pattern(model: nn.Module, x: torch.Tensor) -> list[str]:
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    return [n for n, p in model.named_parameters() if p.grad is not None]


@pytest.mark.parametrize("name", list_models())
def test_after_step_depends_only_on_its_arguments(name):
    # A resumed run calls after_step(start, total) once: that must restore what steps 1..start set.
    x, total = torch.randn(2, 3, 32, 32), 10
    for start in (1, 5, total):
        torch.manual_seed(0)
        stepped = create_model(name)
        for step in range(start + 1):
            stepped.after_step(step, total)
        torch.manual_seed(0)
        resumed = create_model(name)
        resumed.load_state_dict(stepped.state_dict())
        resumed.after_step(start, total)
        assert _grad_pattern(stepped, x) == _grad_pattern(resumed, x)


def test_a_model_outside_the_protocol_is_refused(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "plain", lambda num_classes=10: nn.Linear(4, 2))
    with pytest.raises(TypeError, match="not a CifarModel"):
        create_model("plain")

    class Twice(CifarModel):
        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.fc = nn.Linear(4, num_classes)

        def parameter_roles(self):
            return {"weights": [self.fc.weight, self.fc.bias], "biases": [self.fc.bias]}

    class LeftOut(Twice):
        def parameter_roles(self):
            return {"weights": [self.fc.weight]}

    class Unknown(Twice):
        def parameter_roles(self):
            return {"weights": [self.fc.weight], "gains": [self.fc.bias]}

    for cls, needle in (
        (Twice, "two roles"),
        (LeftOut, "'fc.bias' has no role"),
        (Unknown, "'gains'"),
    ):
        monkeypatch.setitem(registry._REGISTRY, "bad", cls)
        with pytest.raises(TypeError, match=needle):
            create_model("bad")


@pytest.mark.parametrize("name", list_models())
def test_a_training_forward_reads_no_tensor_on_the_host(name, monkeypatch):
    # bool() or .item() of a device tensor waits for the device: a host sync every step.
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.randn(4, 3, 32, 32)

    def host_read(*args, **kwargs):
        raise AssertionError("a tensor was read on the host in forward")

    for attr in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, attr, host_read)
    for step in (0, 10):  # before and after per-step changes (fastnet freezes its whitening bias)
        model.after_step(step, 10)
        model(x)


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_and_finite(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
@pytest.mark.slow
def test_a_few_steps_lower_the_loss_on_the_sample(name, sample_data):
    torch.manual_seed(0)
    model = create_model(name).train()
    # Big or deep models (resnet18: 11M parameters; resnet56: 57 layers) get fewer images and
    # steps to keep CI short.
    layers = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    n, steps = (32, 8) if count_parameters(model) > 2_000_000 or layers > 30 else (64, 15)
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
