"""``--set section.key=value``: overrides parsed as TOML values and set by dotted name."""

from __future__ import annotations

from typing import Any

from cifarlab import tomlread
from cifarlab.errors import RecipeError


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.name=seednet"]`` -> dict, values parsed as TOML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--set {item!r}: expected key=value, e.g. optim.lr=7e-4")
        out[key] = parse_value(text.strip())
    return out


def parse_value(text: str) -> Any:
    """A TOML value (``1e-3``, ``true``, ``[0.5, 0.5]``, ``"x"``), or a bare string."""
    try:
        return tomlread.loads(f"v = {text}")["v"]
    except ValueError:  # TOMLDecodeError, or an integer of over 4,300 digits
        return text


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw["a"]["b"] = value`` for ``key`` "a.b", making missing sections."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise RecipeError(f"--set {key}: {part!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value
