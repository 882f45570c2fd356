"""Optimizers from a recipe, and the learning rate as a pure function of the step."""

from __future__ import annotations

import math

import torch

from cifarlab.train.recipe import OptimConfig, ScheduleConfig


def build_optimizer(cfg: OptimConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam (L2 weight decay, as the report) or AdamW (decoupled).

    A model may define ``param_groups(cfg) -> list[dict]`` to set per-group options
    (e.g. no weight decay on batch-norm parameters); a group's ``lr_scale`` multiplies
    the scheduled learning rate (see ``set_lr``).
    """
    params = model.param_groups(cfg) if hasattr(model, "param_groups") else model.parameters()
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
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
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
