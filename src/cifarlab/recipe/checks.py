"""The one-line errors of recipes: a failed check names the field and says what is wrong,
with any value it quotes cut to a readable length."""

from __future__ import annotations

from typing import Any

from cifarlab.errors import RecipeError


def check(ok: bool, name: str, message: str) -> None:
    """Raise ``RecipeError("NAME: MESSAGE")`` unless ``ok``."""
    if not ok:
        raise RecipeError(f"{name}: {message}")


def choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    """``value`` must be one of ``choices``; else one line listing them."""
    check(
        value in choices,
        name,
        f"{short(value)} is not allowed; choose one of {', '.join(choices)}",
    )


def short(value: Any) -> str:
    """``repr(value)``, cut to a readable length: an error line must not carry a 50 MB value."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"
