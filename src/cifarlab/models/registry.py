"""Models by name: ``@register_model`` + ``create_model(name, **options)`` + ``list_models()``.

Follows timm's registry: the CLI, recipes and studies refer to a model only by
its name, and tests sweep every registered name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cifarlab.errors import RecipeError

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a factory ``fn(num_classes=10, **options) -> nn.Module`` under ``name``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered model names, sorted."""
    _import_families()
    return sorted(_REGISTRY)


def create_model(name: str, **options: Any):
    """Build the model registered as ``name`` with the given options."""
    _import_families()
    if name not in _REGISTRY:
        raise RecipeError(
            f"model.name: unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}"
        )
    try:
        return _REGISTRY[name](**options)
    except TypeError as exc:
        raise RecipeError(f"model.options for {name!r}: {exc}") from None


def _import_families() -> None:
    # Importing a family module runs its @register_model decorators.
    from cifarlab.models import families  # noqa: F401
