"""Ablation ladders: an ordered list of named recipe changes, stored as TOML.

A ladder file::

    name = "seed-report"
    description = "..."
    base = "seed-baseline"            # a built-in recipe name or a recipe file

    [[steps]]
    name = "baseline"
    changes = {}

    [[steps]]
    name = "weight-decay"
    description = "Adam L2 weight decay 1e-5"
    reference = 72.89                 # optional: a published test accuracy (%), for comparison
    changes = { "optim.weight_decay" = 1e-5 }

``changes`` maps dotted recipe keys (as ``--set``) to values; nested tables are
flattened to dotted keys. A *cumulative* study runs step k with the changes of
steps 1..k applied in order; a *leave-one-out* study runs the final recipe
("final") and, for each step with changes, the final recipe without that
step's changes ("-<step>"). Built-in ladders live in ``cifarlab/studies/ladders``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cifarlab.errors import RecipeError
from cifarlab.recipe import read_named_toml

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - Python 3.10
    pass

# Step names become directory names (runs/<step>/seed<k>): keep them plain. A leading "-" is
# reserved for leave-one-out steps, "final" for the full recipe of a leave-one-out study.
STEP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]*$")
LADDER_KEYS = ("name", "description", "base", "steps")
STEP_KEYS = ("name", "description", "changes", "reference")


@dataclass(frozen=True)
class LadderStep:
    name: str
    changes: dict[str, Any] = field(default_factory=dict)  # dotted recipe key -> value
    description: str = ""
    reference: float | None = None  # a published test accuracy (%) for this step, if any


@dataclass(frozen=True)
class Ladder:
    name: str
    base: str  # recipe name or path the first step starts from
    steps: tuple[LadderStep, ...]
    description: str = ""
    source: str = ""  # where it was read from, for error messages


@dataclass(frozen=True)
class StudyStep:
    """One step of a study: what its runs change relative to the study's base recipe."""

    name: str
    overrides: dict[str, Any]  # every dotted change from the base recipe, applied in order
    changes: dict[str, Any]  # what this step changes relative to its comparison step
    description: str = ""
    reference: float | None = None
    diff_ref: str | None = None  # step to compare with (None: the previous step, if any)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "changes": dict(self.changes),
            "overrides": dict(self.overrides),
            "description": self.description,
            "reference": self.reference,
            "diff_ref": self.diff_ref,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StudyStep:
        return cls(
            name=raw["name"],
            overrides=dict(raw.get("overrides", raw.get("changes", {}))),
            changes=dict(raw.get("changes", {})),
            description=raw.get("description", ""),
            reference=raw.get("reference"),
            diff_ref=raw.get("diff_ref"),
        )


def builtin_ladders() -> list[str]:
    """Names of the ladders shipped with cifarlab."""
    folder = resources.files("cifarlab") / "studies" / "ladders"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_ladder(name_or_path: str | Path) -> Ladder:
    """A ladder by built-in name or TOML path, checked: every step's recipe must resolve."""
    path = Path(name_or_path)
    raw, where = read_named_toml(str(name_or_path), "ladder", "studies/ladders", builtin_ladders())
    ladder = _ladder_from_raw(raw, where, default_name=path.stem, folder=path.parent)
    check_ladder(ladder)
    return ladder


def _ladder_from_raw(raw: dict[str, Any], where: str, default_name: str, folder: Path) -> Ladder:
    unknown = sorted(set(raw) - set(LADDER_KEYS))
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(LADDER_KEYS)}")
    name = raw.get("name", default_name)
    base = raw.get("base", "seed-baseline")
    for key, value in (("name", name), ("base", base), ("description", raw.get("description", ""))):
        if not isinstance(value, str):
            raise RecipeError(f"{where}: {key}: expected a string, got {value!r}")
    if base.endswith(".toml") and not Path(base).is_absolute():
        base = str(folder / base)  # a recipe file next to the ladder file
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise RecipeError(f"{where}: needs at least one [[steps]] table with a name and changes")
    steps: list[LadderStep] = []
    for i, s in enumerate(steps_raw):
        label = f"{where}: step {i + 1}"
        if not isinstance(s, dict):
            raise RecipeError(f"{label}: expected a [[steps]] table, got {s!r}")
        if "name" in s and isinstance(s["name"], str):
            label = f"{where}: step {s['name']!r}"
        unknown = sorted(set(s) - set(STEP_KEYS))
        if unknown:
            raise RecipeError(
                f"{label}: unknown key {unknown[0]!r}; allowed: {', '.join(STEP_KEYS)}"
            )
        step_name = s.get("name")
        if not isinstance(step_name, str) or not STEP_NAME.match(step_name) or step_name == "final":
            raise RecipeError(
                f"{label}: name must be letters, digits, '_', '.', '+', '=' or '-' (not first), "
                f"and not 'final'; got {step_name!r}"
            )
        if any(prev.name == step_name for prev in steps):
            raise RecipeError(f"{label}: the name is used by an earlier step; names must be unique")
        changes = s.get("changes", {})
        if not isinstance(changes, dict):
            raise RecipeError(f"{label}: changes: expected a table of dotted keys, got {changes!r}")
        description = s.get("description", "")
        if not isinstance(description, str):
            raise RecipeError(f"{label}: description: expected a string, got {description!r}")
        reference = s.get("reference")
        if reference is not None and (
            isinstance(reference, bool) or not isinstance(reference, (int, float))
        ):
            raise RecipeError(
                f"{label}: reference: expected a test accuracy in %, got {reference!r}"
            )
        steps.append(
            LadderStep(
                name=step_name,
                changes=flatten(changes),
                description=description,
                reference=None if reference is None else float(reference),
            )
        )
    return Ladder(
        name=name,
        base=base,
        steps=tuple(steps),
        description=raw.get("description", ""),
        source=where,
    )


def flatten(changes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1e-3}}`` -> ``{"optim.lr": 1e-3}`` (dotted keys are kept as they are)."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def check_ladder(ladder: Ladder) -> None:
    """Every cumulative step must give a valid recipe and a model that builds."""
    from cifarlab.models import create_model
    from cifarlab.recipe import load_recipe

    if not any(s.changes for s in ladder.steps):
        pass  # a ladder of one unchanged step is odd but valid (a seed study of its base)
    cumulative: dict[str, Any] = {}
    for step in ladder.steps:
        cumulative.update(step.changes)
        try:
            recipe = load_recipe(ladder.base, dict(cumulative))
            create_model(recipe.model.name, num_classes=10, **recipe.model.options)
        except RecipeError as exc:
            raise RecipeError(f"{ladder.source}: step {step.name!r}: {exc}") from None


def cumulative_steps(ladder: Ladder) -> list[StudyStep]:
    """Step k applies the changes of steps 1..k in order; each is compared with the one before."""
    out: list[StudyStep] = []
    cumulative: dict[str, Any] = {}
    for step in ladder.steps:
        cumulative.update(step.changes)
        out.append(
            StudyStep(
                name=step.name,
                overrides=dict(cumulative),
                changes=dict(step.changes),
                description=step.description,
                reference=step.reference,
            )
        )
    return out


def final_overrides(ladder: Ladder) -> dict[str, Any]:
    """The dotted changes of the ladder's last cumulative step."""
    out: dict[str, Any] = {}
    for step in ladder.steps:
        out.update(step.changes)
    return out


def leave_one_out_steps(ladder: Ladder) -> list[StudyStep]:
    """ "final" (every change), then "-<step>" (every change but that step's) for each step
    with changes; each "-<step>" is compared with "final". Its ``changes`` are the values its
    keys fall back to once the step is left out."""
    from cifarlab.recipe import load_recipe

    final = final_overrides(ladder)
    last = ladder.steps[-1]
    out = [
        StudyStep(
            name="final",
            overrides=dict(final),
            changes={},
            description=f"every change of the ladder (= step {last.name!r})",
            reference=last.reference,
        )
    ]
    for left_out in ladder.steps:
        if not left_out.changes:
            continue
        overrides: dict[str, Any] = {}
        for step in ladder.steps:
            if step is not left_out:
                overrides.update(step.changes)
        resolved = load_recipe(ladder.base, dict(overrides)).to_dict()
        reverted = {key: _get_dotted(resolved, key) for key in left_out.changes}
        out.append(
            StudyStep(
                name=f"-{left_out.name}",
                overrides=overrides,
                changes=reverted,
                description=f"final recipe without {left_out.name!r}"
                + (f" ({left_out.description})" if left_out.description else ""),
                diff_ref="final",
            )
        )
    return out


def _get_dotted(raw: dict[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "(model default)"  # an option the base recipe leaves to the model
        node = node[part]
    return node
