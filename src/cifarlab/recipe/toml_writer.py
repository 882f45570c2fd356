"""A small TOML writer for recipe dicts: what recipe.toml, a tune's start.toml and best.toml
are written with (tomllib only reads)."""

from __future__ import annotations

import json
from typing import Any


def dumps_toml(raw: dict[str, Any]) -> str:
    """A small TOML writer for recipe dicts (scalars, lists, nested tables).

    None is left out: TOML has no null, and an absent optional field reads back as None.
    """
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        _emit_table(lines, name, table)
    return "\n".join(lines) + "\n"


def _emit_table(lines: list[str], name: str, table: dict[str, Any]) -> None:
    lines.append("")
    lines.append(f"[{name}]")
    subtables = []
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, dict):
            subtables.append((f"{name}.{key}", value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for sub_name, sub in subtables:
        _emit_table(lines, sub_name, sub)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")
