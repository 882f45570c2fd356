"""Recipes stored by older runs, brought to today's fields by the checkpoint format version
they were stored under (cifarlab.rundir.FORMAT_VERSION): one explicit step per version."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from cifarlab.errors import RecipeError
from cifarlab.recipe.schema import OptimConfig
from cifarlab.rundir import FORMAT_VERSION

# The first checkpoint format; no checkpoint was ever written without a version, so a recipe
# whose version is not known (recipe.toml records none) is read as this, the oldest: its step
# leaves a recipe already in today's fields as it is.
FIRST_VERSION = 1

# Optimiser options that models used to take, and the [optim] field that replaces each.
MOVED_MODEL_OPTIONS = {
    "bias_lr_scale": "bias_lr",
    "head_lr_scale": "head_lr",
    "bias_momentum": "bias_momentum",
}
# fastnet's defaults for them before they moved (commit bbdd471, 2026-11-29).
_OLD_FASTNET_OPTIONS = {"bias_lr_scale": 64.0}


def migrate_stored(raw: dict[str, Any], version: int) -> dict[str, Any]:
    """``raw``, a recipe stored under checkpoint format ``version``, in today's fields.

    Each format older than FORMAT_VERSION has one step to the next (``_STEPS``), applied in
    turn; a recipe of the current format comes back as it is, unchecked here (validation
    refuses what it must). A newer format than this cifarlab knows is refused in one line.
    ``raw`` is never changed: a step that changes something returns a new dict.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        raise RecipeError(
            f"recipe stored in checkpoint format {version!r}, newer than this cifarlab "
            f"({FORMAT_VERSION}); upgrade cifarlab"
        )
    for step in range(max(version, FIRST_VERSION), FORMAT_VERSION):
        raw = _STEPS[step](raw)
    return raw


def _from_version_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Format 1 to 2: a recipe stored before the optimiser policy moved to ``[optim]``, in
    today's fields (a new dict; ``raw`` is not changed); one of today's comes back as it is.

    Format 1 (every checkpoint before issue 30) holds recipes of two shapes. Until commit
    bbdd471 (2026-11-29) fastnet took the policy as model options: the biases'
    and the head's peak lr as multiples of ``optim.lr`` (``bias_lr_scale``, default 64;
    ``head_lr_scale``, default 1) and their momentum (``bias_momentum``, default: ``momentum``),
    and Muon always held its filters at norm sqrt(out_channels). train/optim.py now reads
    ``optim.bias_lr`` and ``optim.head_lr`` as lrs (a group's lr scale is bias_lr / lr), so
    ``bias_lr = lr x bias_lr_scale`` and ``head_lr = lr x head_lr_scale`` give the old groups'
    lrs, weight decays and momenta; ``optim.weight_norm = true`` keeps Muon's filters as they
    were. Within format 1 such a recipe is told by what it lacks: ``optim.weight_norm``, a
    bool written into every resolved recipe since that commit (checkpoint and recipe.toml
    alike). Format 2 is written only by code that writes today's fields, so it needs no such
    test.
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


# format version -> the step from it to the next
_STEPS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_version_1}
