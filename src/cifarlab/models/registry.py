"""Models by name (``@register_model``, ``create_model``, ``list_models``) and the model protocol.

Follows timm's registry: the CLI, recipes and studies refer to a model only by
its name, and tests sweep every registered name.

The training loop and ``train/optim.py`` use a model only through ``ModelProtocol``:
its forward, two hooks (``init_from_data``, ``after_step``) and ``parameter_roles``,
which names parameters by what they are so that the recipe, not the model, sets
their optimiser options. ``CifarModel`` is the base class every registered model
derives from; its hooks do nothing, so a plain network writes only ``forward``.
``create_model`` refuses a model that does not satisfy the protocol.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from cifarlab.errors import RecipeError

# Parameter roles a model may name (train/optim.py gives each its own optimiser group):
#   weights: filters and matrices, trained at optim.lr (Muon's parameters under optim.name = "muon")
#   biases:  biases and normalisation shifts, at optim.bias_lr
#   head:    the classifier's weights, at optim.head_lr
ROLES = ("weights", "biases", "head")


@runtime_checkable
class ModelProtocol(Protocol):
    """What the training loop and the optimiser builder call on a model."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Any: ...

    def init_from_data(self, images: torch.Tensor) -> None: ...

    def after_step(self, step: int, total_steps: int) -> None: ...

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]: ...


class CifarModel(nn.Module):
    """Base class of every registered model: ``forward`` plus hooks that default to nothing."""

    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent initialisation from normalised training images (N, 3, H, W).

        Called once, before the first step of a fresh run; a resumed run gets the result
        from its checkpoint instead. Default: nothing.
        """

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after optimizer step ``step`` (1-based) of ``total_steps``, and once with
        ``(start, total_steps)`` before the first step of a run that starts at ``start``
        (0 for a fresh run). Whatever it sets must be a function of its arguments alone, so
        that the call at a resume restores it. Default: nothing.
        """

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role (keys from ``ROLES``), for the optimiser's groups.

        Every parameter that trains appears exactly once; frozen ones may be left out.
        Default: all parameters in one role, "weights" (one optimiser group).
        """
        return {"weights": list(self.parameters())}


def check_model(model: Any, name: str = "model") -> None:
    """Raise TypeError unless ``model`` satisfies ``ModelProtocol`` with well-formed roles.

    A TypeError, not a RecipeError: a model that breaks the protocol is a bug in its code.
    """
    if not isinstance(model, nn.Module) or not isinstance(model, ModelProtocol):
        missing = [
            h for h in ("init_from_data", "after_step", "parameter_roles") if not hasattr(model, h)
        ]
        raise TypeError(
            f"model {name!r}: {type(model).__name__} is not a CifarModel "
            f"(an nn.Module with init_from_data, after_step, parameter_roles; missing {missing})"
        )
    roles = model.parameter_roles()
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise TypeError(f"model {name!r}: unknown parameter role {unknown[0]!r}; roles: {ROLES}")
    owned = {id(p) for p in model.parameters()}
    seen: set[int] = set()
    for role, params in roles.items():
        for p in params:
            if not isinstance(p, nn.Parameter) or id(p) not in owned:
                raise TypeError(f"model {name!r}: role {role!r} holds something not its parameter")
            if id(p) in seen:
                raise TypeError(f"model {name!r}: a parameter is in two roles (again in {role!r})")
            seen.add(id(p))
    left_out = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if left_out:
        raise TypeError(f"model {name!r}: trainable parameter {left_out[0]!r} has no role")


_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a factory ``fn(num_classes=10, **options) -> CifarModel`` under ``name``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_defaults(name: str) -> dict[str, Any]:
    """The options model ``name`` takes and their defaults (``num_classes`` left out); an
    option without a default maps to ``inspect.Parameter.empty``. A search space checks its
    ``model.options.*`` entries against these, and reads the values a recipe leaves unset."""
    if name not in _REGISTRY:
        raise RecipeError(
            f"model.name: unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}"
        )
    return {
        p.name: p.default
        for p in inspect.signature(_REGISTRY[name]).parameters.values()
        if p.name != "num_classes" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def create_model(name: str, **options: Any) -> CifarModel:
    """Build the model registered as ``name`` with the given options."""
    if name not in _REGISTRY:
        raise RecipeError(
            f"model.name: unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}"
        )
    try:
        model = _REGISTRY[name](**options)
    except TypeError as exc:
        raise RecipeError(f"model.options for {name!r}: {exc}") from None
    check_model(model, name)
    return model
