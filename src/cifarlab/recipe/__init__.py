"""Recipes: complete, typed training configurations, stored as TOML.

A recipe is data: every number of a run lives here, with its unit in a comment, and the
resolved recipe is written into every run directory. Built-in recipes ship in
``cifarlab/recipes/*.toml``; a user file may start from one with ``base = "NAME"`` and change
only what differs. ``--set section.key=value`` overrides any field, parsed as a TOML value.

One concern per module, imported in this order (no module imports one listed after it):

- ``toml_writer``: the TOML writer (recipe.toml, a tune's start.toml and best.toml)
- ``schema``: the sections as typed dataclasses, their fields, units, defaults and choices
- ``checks``: the one-line RecipeError of a failed check
- ``reading``: hardened reading of a user's TOML file, or a built-in one
- ``overrides``: ``--set`` parsed and applied by dotted name
- ``migrate``: recipes stored by older runs (checkpoint format versions) in today's fields
- ``validation``: range checks, the limits of new runs, the run-length checks
- ``building``: a Recipe from a dict, typed, migrated and validated (or not: ``build_recipe``)
- ``loading``: a recipe by name, path, dict or Recipe, with overrides (``with_overrides``:
  a Recipe with overrides, not validated)
- ``compare``: how two recipes differ, field by dotted field (the one meaning of it)

This module re-exports the public names; import them from ``cifarlab.recipe``.
"""

from cifarlab.errors import RecipeError
from cifarlab.recipe.building import build_recipe, recipe_from_dict
from cifarlab.recipe.compare import differences, first_difference
from cifarlab.recipe.loading import builtin_recipes, load_recipe, with_overrides
from cifarlab.recipe.migrate import MOVED_MODEL_OPTIONS, migrate_stored
from cifarlab.recipe.overrides import parse_overrides, parse_value
from cifarlab.recipe.reading import MAX_FILE_BYTES, read_named_toml
from cifarlab.recipe.schema import (
    DEFAULT_MAX_STEPS,
    DEVICES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TTA_MODES,
    AugmentConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    Recipe,
    ScheduleConfig,
    SystemConfig,
    TrainConfig,
)
from cifarlab.recipe.toml_writer import dumps_toml
from cifarlab.recipe.validation import (
    CIFAR10_TRAIN_IMAGES,
    IMAGE_SIDE,
    MAX_EPOCHS,
    MAX_MIX_ALPHA,
    MAX_TEXT,
    MAX_THREADS,
    MIN_MIX_ALPHA,
    MIN_RESOLUTION,
    check_run_length,
    run_steps,
    validate,
)

__all__ = [
    "AugmentConfig",
    "CIFAR10_TRAIN_IMAGES",
    "DEFAULT_MAX_STEPS",
    "DEVICES",
    "DataConfig",
    "EvalConfig",
    "IMAGE_SIDE",
    "MAX_EPOCHS",
    "MAX_FILE_BYTES",
    "MAX_MIX_ALPHA",
    "MAX_TEXT",
    "MAX_THREADS",
    "MIN_MIX_ALPHA",
    "MIN_RESOLUTION",
    "MOVED_MODEL_OPTIONS",
    "ModelConfig",
    "OPTIMIZERS",
    "OptimConfig",
    "PRECISIONS",
    "Recipe",
    "RecipeError",
    "SCHEDULES",
    "ScheduleConfig",
    "SystemConfig",
    "TTA_MODES",
    "TrainConfig",
    "build_recipe",
    "builtin_recipes",
    "check_run_length",
    "differences",
    "first_difference",
    "dumps_toml",
    "load_recipe",
    "migrate_stored",
    "parse_overrides",
    "parse_value",
    "read_named_toml",
    "recipe_from_dict",
    "run_steps",
    "validate",
    "with_overrides",
]
