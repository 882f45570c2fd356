"""Optimizer groups: built from the model's parameter roles and the recipe's per-role options."""

from __future__ import annotations

import pytest

from cifarlab.errors import RecipeError
from cifarlab.models import create_model
from cifarlab.recipe import load_recipe
from cifarlab.train.optim import build_optimizer, lr_at, set_lr

# airbench94_muon (KellerJordan/cifar10-airbench): batch 2000, loss summed over the batch.
AB_BATCH, AB_BIAS_LR, AB_HEAD_LR, AB_WD = 2000, 0.053, 0.67, 2e-6 * 2000
AB_MUON_LR, AB_MUON_MOMENTUM, AB_SGD_MOMENTUM = 0.24, 0.6, 0.85


def test_fast94_groups_hold_airbench94_muons_numbers():
    recipe = load_recipe("fast94", {"model.options.widths": [16, 32, 32]})
    model = create_model("fastnet", **recipe.model.options)
    opt = build_optimizer(recipe.optim, model)
    filters, biases, head = opt.param_groups
    roles = model.parameter_roles()
    assert [len(g["params"]) for g in opt.param_groups] == [
        len(roles["weights"]),
        len(roles["biases"]),
        1,
    ]
    assert filters["muon"] and filters["weight_norm"] and not biases.get("muon")
    assert all(g["nesterov"] for g in opt.param_groups)
    assert filters["momentum"] == AB_MUON_MOMENTUM
    assert biases["momentum"] == head["momentum"] == AB_SGD_MOMENTUM
    total = 250
    for step in (0, 100, 249):
        lr = lr_at(step, total, recipe.optim.lr, recipe.schedule)
        set_lr(opt, lr)
        factor = 1 - step / total  # airbench's linear decay, applied to every group
        assert filters["lr"] == pytest.approx(AB_MUON_LR * factor, rel=1e-12)
        # Our loss is the batch mean, airbench's the sum: the same SGD step takes 2000x the lr.
        assert biases["lr"] == pytest.approx(AB_BIAS_LR * AB_BATCH * factor, rel=1e-12)
        assert head["lr"] == pytest.approx(AB_HEAD_LR * AB_BATCH * factor, rel=1e-12)
    for group, ab_lr in ((biases, AB_BIAS_LR), (head, AB_HEAD_LR)):
        # airbench's SGD weight_decay is wd / lr on the summed loss: wd / lr / 2000 on the mean.
        # The recipe rounds 0.004 / 0.24 to 0.016667, hence rel 1e-4.
        assert group["weight_decay"] == pytest.approx(AB_WD / ab_lr / AB_BATCH, rel=1e-4)
        assert group["weight_decay"] * group["lr_scale"] == recipe.optim.weight_decay


def test_a_model_without_roles_gets_the_one_group_it_always_had():
    model = create_model("seednet")
    for name in ("sgd", "adam", "adamw"):
        opt = build_optimizer(load_recipe("seed-baseline", {"optim.name": name}).optim, model)
        (group,) = opt.param_groups
        assert group["params"] == list(model.parameters()) and "lr_scale" not in group
    set_lr(opt, 0.5)
    assert group["lr"] == 0.5


def test_per_role_options_need_the_role():
    for key, value in (("bias_lr", 0.1), ("head_lr", 0.1), ("bias_momentum", 0.8)):
        cfg = load_recipe("seed-baseline", {f"optim.{key}": value}).optim
        with pytest.raises(RecipeError, match=f"optim.{key}: model SeedNet names no"):
            build_optimizer(cfg, create_model("seednet"))


def test_per_role_lrs_and_decay_follow_the_schedule_for_any_optimizer():
    model = create_model("fastnet", widths=[16, 32, 32])
    roles = model.parameter_roles()
    overrides = {"optim.lr": 0.1, "optim.bias_lr": 0.4, "optim.head_lr": 0.05}
    for name in ("sgd", "adamw"):
        overrides.update({"optim.name": name, "optim.weight_decay": 0.01})
        opt = build_optimizer(load_recipe("fast94", overrides).optim, model)
        assert [g["params"] for g in opt.param_groups] == [
            roles["weights"],
            roles["biases"],
            roles["head"],
        ]
        set_lr(opt, 0.01)  # the schedule at a tenth of the peak
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.04, 0.005])
        # lr x weight decay, the decay per step, is the same in every group
        assert [g["lr"] * g["weight_decay"] for g in opt.param_groups] == pytest.approx(
            [1e-4] * 3, rel=1e-12
        )
