"""A Recipe from a dict: every key known, every value of its field's type (coerced where TOML
cannot say it, e.g. an integer for a float), then migrated (a stored recipe) and validated
(``recipe_from_dict``); or built the same way and not validated (``build_recipe``), for a
recipe that is only compared, or validated once its caller knows it is the one that runs."""

from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from cifarlab.errors import RecipeError
from cifarlab.recipe.checks import short
from cifarlab.recipe.migrate import FIRST_VERSION, migrate_stored
from cifarlab.recipe.schema import Recipe
from cifarlab.recipe.validation import validate


def recipe_from_dict(
    raw: dict[str, Any], *, stored: bool = False, version: int | None = None
) -> Recipe:
    """Build and validate a Recipe; unknown keys and bad values raise RecipeError.

    ``stored=True`` is for a recipe read back from a run (its checkpoint or recipe.toml:
    evaluate, predict, export, resume). It is first brought to today's fields from the
    checkpoint format it was stored under, ``version`` (the payload's ``format_version``;
    ``migrate_stored``): a current one is read as it is. None, the version not known
    (recipe.toml records none), reads it as the oldest format, whose step leaves a recipe of
    today's fields as it is. The limits on what a new run may ask for (run length, text
    size: ``validate``'s ``new_run``) are not applied, since that run exists. A user's
    recipe and ``--set`` (``load_recipe``) keep every check and every refusal.
    """
    recipe = build_recipe(raw, stored=stored, version=version)
    validate(recipe, new_run=not stored)
    return recipe


def build_recipe(
    raw: dict[str, Any], *, stored: bool = False, version: int | None = None
) -> Recipe:
    """A Recipe as ``recipe_from_dict`` builds it (unknown keys and values of the wrong type
    raise RecipeError; ``stored`` and ``version`` migrate it alike), but NOT validated: no
    range check, no limit of a new run. For a recipe that is only compared (a resume's stored
    recipe beside the changed one it trains), or that its caller validates once it knows it
    is the recipe that runs (``validate``, with ``new_run`` as the caller decides).
    """
    if version is not None and not stored:
        raise TypeError("a recipe version is for a stored recipe (stored=True)")
    if stored:
        raw = migrate_stored(raw, FIRST_VERSION if version is None else version)
    return _build(Recipe, raw, prefix="")


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise RecipeError(f"{prefix.rstrip('.') or 'recipe'}: expected a table, got {short(raw)}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        where = prefix.rstrip(".") or "recipe"
        raise RecipeError(
            f"{where}: unknown key {short(unknown[0])}; allowed: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value, hint, name = raw[f.name], hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(hint, value, name + ".")
        else:
            kwargs[f.name] = _coerce(value, hint, name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint):
        # ``X | None``: None comes only from a dict (TOML has no null: absent means None).
        if value is None:
            return None
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return _coerce(value, inner, name)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(f"{name}: expected true or false, got {short(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise RecipeError(f"{name}: expected an integer, got {short(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)  # an integer too large for a float raises OverflowError
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise RecipeError(f"{name}: expected a finite number, got {short(value)}")
            return number
        raise RecipeError(f"{name}: expected a number, got {short(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise RecipeError(f"{name}: expected a string, got {short(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{name}: expected a list of numbers, got {short(value)}")
        return [_coerce(v, hint.__args__[0], f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{name}: expected a table, got {short(value)}")
        return dict(value)
    raise AssertionError(f"unhandled recipe type {hint} for {name}")  # a bug, not user input
