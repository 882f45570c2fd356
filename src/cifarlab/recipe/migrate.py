"""Recipes stored by older runs, brought to today's fields."""

from __future__ import annotations

import copy
from typing import Any

from cifarlab.recipe.schema import OptimConfig

# Optimiser options that models used to take, and the [optim] field that replaces each.
MOVED_MODEL_OPTIONS = {
    "bias_lr_scale": "bias_lr",
    "head_lr_scale": "head_lr",
    "bias_momentum": "bias_momentum",
}
# fastnet's defaults for them before they moved (commit bbdd471, 2026-11-29).
_OLD_FASTNET_OPTIONS = {"bias_lr_scale": 64.0}


def migrate_stored(raw: dict[str, Any]) -> dict[str, Any]:
    """A recipe stored by a run before the optimiser policy moved to ``[optim]``, in today's
    fields (a new dict; ``raw`` is not changed). A recipe of today comes back as it is.

    Until commit bbdd471 (2026-11-29) fastnet took the policy as model options: the biases'
    and the head's peak lr as multiples of ``optim.lr`` (``bias_lr_scale``, default 64;
    ``head_lr_scale``, default 1) and their momentum (``bias_momentum``, default: ``momentum``),
    and Muon always held its filters at norm sqrt(out_channels). train/optim.py now reads
    ``optim.bias_lr`` and ``optim.head_lr`` as lrs (a group's lr scale is bias_lr / lr), so
    ``bias_lr = lr x bias_lr_scale`` and ``head_lr = lr x head_lr_scale`` give the old groups'
    lrs, weight decays and momenta; ``optim.weight_norm = true`` keeps Muon's filters as they
    were. Such a recipe is told by what it lacks: ``optim.weight_norm``, a bool written into
    every resolved recipe since that commit (checkpoint and recipe.toml alike).
    """
    if not isinstance(raw, dict):
        return raw  # _build names the problem
    model, optim = raw.get("model"), raw.get("optim")
    if not isinstance(model, dict) or not isinstance(optim, dict):
        return raw
    options = model.get("options", {})
    if not isinstance(options, dict):
        return raw
    old_fastnet = model.get("name") == "fastnet" and "weight_norm" not in optim
    if not old_fastnet and not set(options) & set(MOVED_MODEL_OPTIONS):
        return raw
    raw = copy.deepcopy(raw)
    model, optim = raw["model"], raw["optim"]
    options = model["options"] = {
        **(_OLD_FASTNET_OPTIONS if old_fastnet else {}),
        **model.get("options", {}),
    }
    if old_fastnet and optim.get("name") == "muon":
        optim["weight_norm"] = True
    lr = optim.get("lr", OptimConfig.lr)
    for old, new in MOVED_MODEL_OPTIONS.items():
        value = options.get(old)
        if value is None or optim.get(new) is not None:
            continue  # absent; or set both ways, which validation refuses by name
        if not _is_number(value) or (old.endswith("_lr_scale") and not _is_number(lr)):
            continue  # left for validation to refuse by name
        optim[new] = lr * value if old.endswith("_lr_scale") else value
        del options[old]
    return raw


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
