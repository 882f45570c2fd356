"""The explicit state of a training run, and the global RNG state it carries.

``TrainState`` is everything that changes as a run trains (explicit state, plain
functions): the model and optimizer (and the weights' moving average when the recipe keeps
one), the step, the history of evaluation points, the running
train loss/accuracy since the last point, the first non-finite loss seen, and the timers.
The running sums live on the training device and are read on the host only at evaluation
and checkpoint points, so a training step never waits for the device. Everything else a
step needs — the epoch order and each step's augmentation generator — is a pure function of
(seed, epoch/step) (cifarlab.data.batches), and dropout draws from torch's global RNG, whose
state every checkpoint keeps (``rng_state``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

HISTORY_KEYS = ("step", "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "time_s")


@dataclass
class TrainState:
    """A run's mutable state; ``model`` is the plain module, ``step_model`` what a step calls
    (the same module, or its DistributedDataParallel / torch.compile wrapper)."""

    model: torch.nn.Module
    step_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: int  # optimizer steps taken
    history: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    loss_sum: torch.Tensor | None = None  # float64, on the device: sum of per-image losses
    correct: torch.Tensor | None = None  # int64, on the device: correct train predictions
    seen: int = 0  # images behind loss_sum and correct (known on the host, no sync)
    bad_step: torch.Tensor | None = (
        None  # int64: first step (1-based) with a non-finite loss, 0 = none
    )
    bad_loss: torch.Tensor | None = None  # float32: that loss
    last_val: dict[str, Any] | None = None  # the last evaluation point's validation result
    order: torch.Tensor | None = None  # the current epoch's shuffled indices, on the device
    order_epoch: int = -1
    train_time: float = 0.0  # seconds of training steps over the whole run (resumes included)
    session_time: float = 0.0  # seconds of training steps in this process (the img/s shown)
    session_steps: int = 0
    ema: torch.nn.Module | None = None  # the weights' moving average (train.ema > 0; train/ema.py)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights validation, the test and the saved model use: the EMA when there is one."""
        return self.model if self.ema is None else self.ema

    def reset_running(self, device: torch.device) -> None:
        """Zero the running train statistics (after each evaluation point)."""
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0

    def running(self) -> dict[str, Any]:
        """The running statistics as plain numbers (a host read: evaluation points only)."""
        return {"loss_sum": float(self.loss_sum), "correct": int(self.correct), "seen": self.seen}

    def set_running(self, running: dict[str, Any], device: torch.device) -> None:
        self.loss_sum = torch.tensor(float(running["loss_sum"]), dtype=torch.float64, device=device)
        self.correct = torch.tensor(int(running["correct"]), dtype=torch.int64, device=device)
        self.seen = int(running["seen"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict[str, Any]:
    """Every global RNG state that training touches (dropout uses torch's)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_state_to_list(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_s = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_s["keys"].numpy().astype(np.uint32),
            np_s["pos"],
            np_s["has_gauss"],
            np_s["cached_gaussian"],
        )
    )
    random.setstate(_python_state_from_list(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_list(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_list(state: list):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
