"""Recipes: complete, typed training configurations, stored as TOML (the package's modules
follow in the next commit; for now the whole of it lives in validation.py)."""

from cifarlab.recipe.validation import *  # noqa: F403
from cifarlab.recipe.validation import tomllib  # noqa: F401
