"""Loading a recipe: by built-in name or path (``base = "NAME"`` chains resolved), from a dict
or a Recipe, with ``--set`` overrides applied, then built and checked."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

from cifarlab.errors import RecipeError
from cifarlab.recipe.building import build_recipe, recipe_from_dict
from cifarlab.recipe.overrides import parse_overrides, set_dotted
from cifarlab.recipe.reading import read_named_toml
from cifarlab.recipe.schema import Recipe


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped with cifarlab."""
    folder = resources.files("cifarlab") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_recipe(
    name_or_path: str | Path | Recipe | dict,
    overrides: dict[str, Any] | list[str] | None = None,
) -> Recipe:
    """A recipe by built-in name, TOML path, dict or Recipe, with overrides applied and checked."""
    return recipe_from_dict(_raw(name_or_path, overrides))


def with_overrides(recipe: Recipe, overrides: dict[str, Any] | list[str] | None) -> Recipe:
    """``recipe`` with ``overrides`` applied (a new Recipe; ``recipe`` is not changed), built as
    ``load_recipe`` builds it but NOT validated (``build_recipe``): to compare with ``recipe``
    (what a resume's ``--set`` would change), validated by the caller only if it is the one
    that runs. Unknown fields and values of the wrong type still raise RecipeError."""
    return build_recipe(_raw(recipe, overrides))


def _raw(
    name_or_path: str | Path | Recipe | dict,
    overrides: dict[str, Any] | list[str] | None,
) -> dict[str, Any]:
    """The recipe's dict (``base`` chains resolved), a copy, with ``overrides`` set."""
    if isinstance(name_or_path, Recipe):
        raw = name_or_path.to_dict()
    elif isinstance(name_or_path, dict):  # a deep copy: overrides must not reach the caller's
        raw = _resolve_base(copy.deepcopy(name_or_path), seen=())
    else:
        raw = _read_raw(str(name_or_path), seen=())
    if overrides:
        if not isinstance(overrides, dict):
            overrides = parse_overrides(overrides)
        for key, value in overrides.items():
            set_dotted(raw, key, value)
    return raw


def _read_raw(name_or_path: str, seen: tuple[str, ...]) -> dict[str, Any]:
    if name_or_path in seen:
        raise RecipeError(f"recipe {name_or_path!r}: 'base' chain loops ({' -> '.join(seen)})")
    raw, _ = read_named_toml(name_or_path, "recipe", "recipes", builtin_recipes())
    path = Path(name_or_path)
    raw.setdefault("name", path.stem if path.suffix == ".toml" else name_or_path)
    return _resolve_base(raw, seen + (name_or_path,))


def _resolve_base(raw: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise RecipeError(f"base: expected a recipe name or path, got {base!r}")
    merged = _read_raw(base, seen)
    merged.pop("description", None)
    _deep_update(merged, raw)
    return merged


def _deep_update(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict) and key != "options":
            _deep_update(dst[key], value)
        elif isinstance(value, dict) and isinstance(dst.get(key), dict):
            dst[key] = {**dst[key], **value}
        else:
            dst[key] = value
