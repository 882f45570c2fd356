"""Model EMA: an exponential moving average of the weights, evaluated instead of them.

With ``train.ema = d > 0`` the run keeps a copy of the model whose floating-point entries
follow the trained ones after every optimizer step,

    ema <- ema + (1 - d_t) (model - ema),   d_t = min(d, (1 + t) / (10 + t)),

t the number of optimizer steps taken. The cap (1 + t) / (10 + t) is TensorFlow's
``ExponentialMovingAverage(num_updates=t)`` warm-up: without it the average of a short run
would be mostly the random initial weights (at d = 0.999 the cap binds until step ~9,000,
7 epochs of the report's recipe on the full data; on the bundled sample's 50 steps per epoch,
the whole run). Like timm's ``ModelEmaV3`` (its default, ``exclude_buffers=False``), buffers
are averaged too when they are floating point (batch-norm running means and variances) and
copied when they are not (``num_batches_tracked``, flags); ``torch.optim.swa_utils``'s
``AveragedModel(use_buffers=True)`` also averages buffers.

Validation at evaluation points, the final test and the saved model use the EMA weights: a
checkpoint's ``"model"`` holds them (so ``cifarlab evaluate``, ``predict`` and ``export`` use
them unchanged) and ``"train_model"`` the optimizer's own weights, from which a resume
continues (cifarlab.train.points.save / cifarlab.train.context.build). The update reads nothing back from the device.
"""

from __future__ import annotations

import copy

import torch

WARMUP_STEPS = 10  # d_t = min(d, (1 + t) / (WARMUP_STEPS + t))


def create_ema(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of ``model`` (no gradients, eval mode) to hold the average."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema.eval()


def ema_decay(decay: float, step: int) -> float:
    """The decay applied after optimizer step ``step`` (1-based): ``decay`` with the warm-up cap."""
    return min(decay, (1.0 + step) / (WARMUP_STEPS + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """Move ``ema`` toward ``model`` after optimizer step ``step``: one fused lerp over every
    floating-point parameter and buffer, a copy of the others (no host reads)."""
    weight = 1.0 - ema_decay(decay, step)
    averaged, targets = [], []
    for mine, theirs in zip(_tensors(ema), _tensors(model), strict=True):
        if mine.is_floating_point():
            averaged.append(mine)
            targets.append(theirs)
        else:
            mine.copy_(theirs)
    if averaged:
        torch._foreach_lerp_(averaged, targets, weight)


def _tensors(model: torch.nn.Module):
    yield from model.parameters()
    yield from model.buffers()
