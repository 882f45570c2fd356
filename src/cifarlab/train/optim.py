"""Optimizers from a recipe, and the learning rate as a pure function of the step."""

from __future__ import annotations

import math

import torch

from cifarlab.errors import RecipeError
from cifarlab.models import CifarModel
from cifarlab.recipe import OptimConfig, ScheduleConfig


def build_optimizer(cfg: OptimConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam (L2 weight decay, as the report), AdamW (decoupled), or
    Muon for convolution filters with Nesterov SGD for every other parameter (``MuonSGD``),
    over the groups of ``param_groups``."""
    params = param_groups(cfg, model)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "muon":
        return MuonSGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
    raise AssertionError(cfg.name)  # validated by the recipe


def param_groups(cfg: OptimConfig, model: CifarModel) -> list[dict]:
    """Optimizer groups from the model's parameter roles and the recipe's options for each.

    A model with only "weights" (the default) gets one group with the optimizer's options,
    or under Muon the split of ``_muon_groups``. Otherwise one group per role, in ``ROLES``
    order: "weights" at ``lr`` (Muon's, with ``weight_norm``), "biases" at ``bias_lr``, "head"
    at ``head_lr``, both at ``bias_momentum``. A group's ``lr_scale``, its peak lr / ``lr``,
    multiplies the scheduled lr (``set_lr``); its weight decay is ``weight_decay / lr_scale``
    so that every group decays by the same lr x weight decay per step (airbench: wd / bias_lr).
    """
    roles = {role: list(params) for role, params in model.parameter_roles().items() if params}
    # A per-role option for a role the model does not name would silently do nothing.
    for key, wanted in (
        ("bias_lr", "biases"),
        ("head_lr", "head"),
        ("bias_momentum", "biases/head"),
    ):
        if getattr(cfg, key) is not None and not set(wanted.split("/")) & set(roles):
            raise RecipeError(
                f"optim.{key}: model {type(model).__name__} names no {wanted} parameters "
                f"(its roles: {', '.join(roles)}); leave optim.{key} out"
            )
    if set(roles) <= {"weights"}:
        params = roles.get("weights", [])
        return _muon_groups(params, cfg.weight_norm) if cfg.name == "muon" else [{"params": params}]
    groups = []
    if "weights" in roles:
        weights = roles["weights"]
        muon = [p for p in weights if p.ndim >= 2] if cfg.name == "muon" else []
        rest = [p for p in weights if all(p is not m for m in muon)]
        if muon:
            groups.append(
                {
                    "params": muon,
                    "lr_scale": 1.0,
                    "weight_decay": cfg.weight_decay,
                    "muon": True,
                    "weight_norm": cfg.weight_norm,
                }
            )
        if rest:
            groups.append({"params": rest, "lr_scale": 1.0, "weight_decay": cfg.weight_decay})
    for role, lr in (("biases", cfg.bias_lr), ("head", cfg.head_lr)):
        if role not in roles:
            continue
        scale = 1.0 if lr is None else lr / cfg.lr
        group = {"params": roles[role], "lr_scale": scale, "weight_decay": cfg.weight_decay / scale}
        if cfg.bias_momentum is not None:
            group["momentum"] = cfg.bias_momentum
        groups.append(group)
    return groups


def lr_at(step: int, total_steps: int, peak: float, cfg: ScheduleConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    Linear warm-up over the first ``warmup`` fraction, then constant, step decay
    at ``milestones``, cosine or linear decay to ``final_lr * peak``.
    """
    total = max(total_steps, 1)
    warm = int(round(cfg.warmup * total))
    if step < warm:
        return peak * (step + 1) / warm
    if cfg.name == "constant":
        return peak
    if cfg.name == "step":
        passed = sum(step >= int(m * total) for m in cfg.milestones)
        return peak * cfg.gamma**passed
    progress = (step - warm) / max(total - warm, 1)
    floor = cfg.final_lr * peak
    if cfg.name == "cosine":
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.name == "linear":
        return peak + (floor - peak) * progress
    raise AssertionError(cfg.name)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to the scheduled ``lr`` times the group's ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


# --------------------------------------------------------------------------- Muon


def zeropower_newton_schulz(g: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Approximately orthogonalise a 2-D matrix (``U V^T`` of its SVD, singular values
    only roughly 1) by the quintic Newton-Schulz iteration of Muon (Jordan et al. 2024,
    coefficients 3.4445, -4.7750, 2.0315; airbench94_muon uses 3 steps).

    Runs in the input's dtype. Why not ``torch.optim.Muon``: it accepts only 2-D
    parameters (conv filters are 4-D) and iterates in bf16, which on an AVX2-only CPU
    runs ~50x slower than fp32 (see runtime.fp32_linear).
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + eps)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if tall else x


class MuonSGD(torch.optim.Optimizer):
    """Muon on groups marked ``muon=True`` (matrices and conv filters, reshaped to
    (out, in*k*k)), Nesterov/heavy-ball SGD with L2 weight decay on the others.

    One optimizer object, so the loop's checkpointing and lr schedule (``set_lr``) treat
    it like any other. Muon groups: momentum buffer, Nesterov look-ahead, orthogonalised
    update scaled by ``lr``; with ``weight_norm=True`` the filter is first rescaled to
    norm sqrt(out_channels) (airbench94_muon), else decoupled weight decay ``lr * wd``.
    """

    def __init__(
        self,
        params,
        lr: float = 0.02,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 3,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            muon=False,
            weight_norm=False,
            ns_steps=ns_steps,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim.Optimizer API
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["muon"] and wd:
                    g = g.add(p, alpha=wd)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.detach().clone()
                else:
                    buf.mul_(mom).add_(g)
                g = g.add(buf, alpha=mom) if group["nesterov"] else buf
                if not group["muon"]:
                    p.add_(g, alpha=-lr)
                    continue
                if group["weight_norm"]:
                    p.mul_(len(p) ** 0.5 / p.norm().clamp(min=1e-12))
                elif wd:
                    p.mul_(1 - lr * wd)
                update = zeropower_newton_schulz(g.reshape(len(g), -1).float(), group["ns_steps"])
                p.add_(update.view(g.shape).to(p.dtype), alpha=-lr)
        return loss


def _muon_groups(params: list[torch.nn.Parameter], weight_norm: bool) -> list[dict]:
    """Param groups for MuonSGD when a model names no roles: Muon for every parameter of 2+
    dimensions except the last matrix (taken for the head), SGD for the rest."""
    params = [p for p in params if p.requires_grad]
    matrices = [p for p in params if p.ndim >= 2]
    head = matrices[-1:] if matrices and matrices[-1].ndim == 2 else []
    muon = [p for p in matrices if all(p is not h for h in head)]
    rest = [p for p in params if all(p is not m for m in muon)]
    return [
        {"params": muon, "muon": True, "weight_norm": weight_norm},
        {"params": rest, "muon": False},
    ]
