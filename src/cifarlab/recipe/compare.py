"""How two recipes differ: the one meaning every caller uses (a resume's recorded changes, a
hand-edited recipe.toml, a study or search directory that holds another definition)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cifarlab.recipe.schema import Recipe

# A table compared whole: a model's own settings (``model.options``) are one recipe field,
# as ``base`` merging (cifarlab.recipe.loading) and ``--allow-change model.options`` treat them.
WHOLE_TABLES = frozenset({"options"})


def differences(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """Every field where ``old`` and ``new`` differ: ``{dotted name: (old value, new value)}``.

    Recipes (a ``Recipe`` or its dict) and any nest of tables (a stored tune.json or
    study.json) alike: a table (a mapping) on both sides is compared key by key and named by
    dotted path (``optim.lr``, ``overrides.train.epochs``); anything else (a number, a string,
    a list) is one value, and so is a table named ``options`` (``model.options``). A key absent
    on one side reads as None there. The names come in sorted order, depth first, so the first
    is the same on every machine; equal inputs give ``{}``. When ``old`` or ``new`` is not a
    table at all, the whole value differs under the name ``""``.
    """
    out: dict[str, tuple[Any, Any]] = {}
    _collect(_table(old), _table(new), "", out)
    return out


def _table(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Recipe) else value


def _collect(old: Any, new: Any, name: str, out: dict[str, tuple[Any, Any]]) -> None:
    leaf = name.rpartition(".")[2]
    if isinstance(old, Mapping) and isinstance(new, Mapping) and leaf not in WHOLE_TABLES:
        for key in sorted(set(old) | set(new), key=str):
            _collect(old.get(key), new.get(key), f"{name}.{key}" if name else str(key), out)
    elif old != new:
        out[name] = (old, new)


def first_difference(old: Any, new: Any) -> str | None:
    """The first field of :func:`differences` (``"everything"`` when the two are not tables
    at all), or None when ``old`` and ``new`` are equal: what a refusal names."""
    for name in differences(old, new):
        return name or "everything"
    return None
