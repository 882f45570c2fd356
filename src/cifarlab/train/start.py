"""Where a call of ``train()`` starts: the start and resume policy.

Rank 0 reads the run directory once and decides (``decide_start``): a fresh run, a resume
from the last checkpoint (with the changes ``--allow-change`` let through), or a finished run
with nothing to do. The decision is a ``StartPlan`` that holds the resolved ``Recipe``: the
recipe is resolved and validated here, once, and every rank trains the plan's Recipe as it is
(``World.decide`` hands the plan, checkpoint and all, to the other ranks).

A resumed run keeps the recipe its checkpoint holds. ``--set`` values that change it are
refused unless each changed field is allowed; the override is applied once, to the
checkpoint's recipe, and the changes are recorded (``StartPlan.recorded``: the checkpoint's
earlier ones and this resume's, each with the step it was made at).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifarlab import rundir, tomlread
from cifarlab.errors import CifarlabError, TrainingError, warn
from cifarlab.recipe import (
    Recipe,
    build_recipe,
    differences,
    load_recipe,
    recipe_from_dict,
    run_steps,
    validate,
    with_overrides,
)
from cifarlab.train.optim import lr_at

FRESH, RESUME, FINISHED = "fresh", "resume", "finished"


@dataclass(frozen=True)
class StartPlan:
    """How a call of ``train()`` starts, decided once on rank 0 and shared with every rank.

    ``kind`` is FRESH (``recipe`` only), RESUME (``recipe``, the checkpoint ``payload`` it
    continues from and that file's name ``checkpoint``; ``stored`` and ``changes`` when this
    resume changes the checkpoint's recipe) or FINISHED (``metrics`` only: nothing to train).
    """

    kind: str
    recipe: Recipe | None = None  # the resolved recipe this call trains
    payload: dict[str, Any] | None = None  # the checkpoint a resume continues from
    checkpoint: str = ""  # its file name
    stored: Recipe | None = None  # the checkpoint's recipe, when this resume changes it
    changes: tuple[dict[str, Any], ...] = ()  # this resume's changes: field, from, to
    recorded: tuple[dict[str, Any], ...] = ()  # every change made at resumes, with at_step
    metrics: dict[str, Any] | None = None  # a finished run's metrics.json

    @property
    def quick_check(self) -> bool:
        """Whether the checkpoint resumed is a quick check's (a killed one is finished as one)."""
        return bool(self.payload and self.payload.get("quick_check"))


def decide_start(
    recipe: str | Path | Recipe | dict,
    run: rundir.RunDir,
    overrides: dict[str, Any],
    resume: bool | str,
    allow_change: tuple[str, ...] = (),
) -> StartPlan:
    """The plan of a call of ``train()``: refuses what ``resume`` does not allow, resolves and
    validates the recipe once (``recipe`` with ``overrides`` for a fresh run; the checkpoint's
    recipe, with the allowed ``overrides`` applied once, for a resume)."""
    found = run.latest_checkpoint()
    finished = run.is_finished()
    if resume is False and (found or finished):
        raise TrainingError(
            f"{run.path}: already holds a run; resume it with --resume {run.path}, or choose "
            f"another --out"
        )
    if resume is True and not found:
        raise TrainingError(f"{run.path}: no checkpoint to resume (checkpoint.pt not found)")
    if not found:
        return StartPlan(FRESH, recipe=resolve(recipe, overrides))
    ckpt_path, payload = found
    done = finished and payload["step"] >= payload.get("total_steps", -1)
    if done and not overrides:  # nothing could change it: its recipe is not even read
        return StartPlan(FINISHED, metrics=run.metrics())
    # The checkpoint's recipe, typed and migrated but not validated: recipe_changes validates
    # the one recipe that runs (this one, or the changed one when --set changes it).
    stored = build_recipe(payload["recipe"], stored=True, version=payload.get("format_version"))
    if not done:
        check_recipe_file(run, stored)
    known = recipe if isinstance(recipe, Recipe) else None
    trained, changes = recipe_changes(stored, overrides, allow_change, run.path, known)
    if done:
        if not changes:
            return StartPlan(FINISHED, metrics=run.metrics())
        check_recipe_file(run, stored)  # trained on to a longer end: extended
    if changes:
        check_new_length(run, payload, trained, done)
    step = payload["step"]
    return StartPlan(
        RESUME,
        recipe=trained,
        payload=payload,
        checkpoint=ckpt_path.name,
        stored=stored if changes else None,
        changes=tuple(changes),
        recorded=(
            *payload.get("recipe_changes", []),
            *({"at_step": step, **c} for c in changes),
        ),
    )


def resolve(recipe: str | Path | Recipe | dict, overrides: dict[str, Any]) -> Recipe:
    """The recipe a fresh run trains. A ``Recipe`` is taken as it is when ``overrides`` change
    nothing in it: ``load_recipe`` made and validated it (``cifarlab train`` resolves the recipe
    before it names the run directory, a study's or search's job before it loads the data, and
    each hands that Recipe on, the job with the overrides it holds already). Anything else is
    resolved, and validated, here."""
    if isinstance(recipe, Recipe) and not _changes_anything(recipe, overrides):
        return recipe
    return load_recipe(recipe, overrides)


def _changes_anything(recipe: Recipe, overrides: dict[str, Any]) -> bool:
    """Whether ``overrides`` change a field of ``recipe`` (checked without validating)."""
    return bool(overrides) and bool(differences(recipe, with_overrides(recipe, overrides)))


def check_new_length(
    run: rundir.RunDir, payload: dict[str, Any], recipe: Recipe, done: bool
) -> None:
    """A resume that changes the recipe must not end before the checkpoint's step: a finished
    run is trained on only to a longer ``train.epochs`` (a change that leaves nothing to train
    is refused, not ignored), and an unfinished one is shortened at most to where it is. A
    quick check is never trained on."""
    step, total = payload["step"], payload.get("total_steps")
    if payload.get("quick_check"):
        raise TrainingError(
            f"{run.path}: a quick check (--quick-check) is not trained on; start a real run "
            f"with --recipe {run.recipe_path}"
        )
    n_train = payload.get("data", {}).get("n_train")
    if not isinstance(n_train, int) or n_train < 1:
        return  # an old checkpoint: build() checks against the loaded split
    per_epoch, new_total = run_steps(recipe, n_train)
    if new_total > step or (new_total == step and not done):  # the latter: finish it there
        return
    now = f"{recipe.train.epochs:g} epochs is {new_total:,} steps"
    if done:
        raise TrainingError(
            f"{run.path}: the run finished at step {step:,} of {total:,}; --resume trains it on "
            f"only to a longer train.epochs ({now}): --set train.epochs=N "
            f"--allow-change train.epochs with N above {step / per_epoch:g}"
        )
    raise TrainingError(
        f"train.epochs: {now}, and the run is at step {step:,} already; to shorten it, give "
        f"train.epochs of at least {step / per_epoch:g}"
    )


def check_recipe_file(run: rundir.RunDir, stored: Recipe) -> None:
    """A run's recipe.toml must still say what its checkpoint trains (``stored``); a hand edit
    is refused (resuming would ignore it, and the end of the run would overwrite it)."""
    on_disk = run.recipe()
    if on_disk is None:
        return
    if on_disk == tomlread.loads(stored.to_toml()):  # as the run wrote it: nothing to check
        return
    try:
        edited = recipe_from_dict(on_disk, stored=True).to_dict()
    except CifarlabError as exc:
        raise TrainingError(f"{run.recipe_path}: edited and no longer valid ({exc})") from None
    diff = differences(stored, edited)
    if diff:
        field, (old, new) = next(iter(diff.items()))
        raise TrainingError(
            f"{run.recipe_path}: edited since the run started ({field}: {old!r} -> {new!r}); "
            f"the checkpoint trains the original. Restore the file, or resume with "
            f"--set {field}=... --allow-change {field}"
        )


def recipe_changes(
    stored: Recipe,
    overrides: dict[str, Any],
    allow_change: tuple[str, ...],
    where: Path,
    known: Recipe | None = None,
) -> tuple[Recipe, list[dict[str, Any]]]:
    """The recipe a resume trains (``stored`` with ``overrides`` applied, once) and the fields
    the overrides change, all of them allowed; ``stored`` itself when they change nothing.

    ``stored``, the checkpoint's recipe (``build_recipe``), comes here unvalidated, and the
    one recipe that runs is validated here, once: the changed one with a new run's checks (as
    ``load_recipe`` checks a ``--set``), or ``stored`` as a stored recipe. ``known`` is a
    Recipe validated already (a study's or search's job resolved it with these overrides):
    equal to the recipe that runs, it is taken as it is, and nothing is validated again.
    """
    after = with_overrides(stored, overrides) if overrides else stored  # a copy, overridden
    diff = differences(stored, after)
    refused = [field for field in diff if field not in allow_change]
    if refused:
        raise TrainingError(
            f"{where}: --resume continues the run with its own recipe; it would change "
            f"{', '.join(refused)}. To change a field on purpose: --allow-change {refused[0]} "
            f"(recorded in the run), or start a new run"
        )
    trained = after if diff else stored
    if known is not None and not differences(known, trained):
        trained = known
    else:
        validate(trained, new_run=bool(diff))
    return trained, [{"field": f, "from": a, "to": b} for f, (a, b) in diff.items()]


def warn_schedule_change(plan: StartPlan, total: int, where: Path) -> None:
    """A resume that changed the run's length to ``total`` steps recomputes every
    fraction-of-training setting for it (train/optim.lr_at): say so when that moves the
    learning rate."""
    if plan.stored is None or plan.payload is None or plan.recipe is None:
        return
    step, before_total = plan.payload["step"], plan.payload.get("total_steps")
    if not step or not isinstance(before_total, int) or before_total == total:
        return
    before = lr_at(step - 1, before_total, plan.stored.optim.lr, plan.stored.schedule)
    after = lr_at(step, total, plan.recipe.optim.lr, plan.recipe.schedule)
    if math.isclose(before, after, rel_tol=1e-9, abs_tol=0.0):
        return
    warn(
        f"{where}: the {plan.recipe.schedule.name} schedule is recomputed for "
        f"{total:,} steps instead of {before_total:,}: the learning rate goes from "
        f"{before:.4g} (step {step:,}) to {after:.4g} (step {step + 1:,}) and follows the "
        f"longer schedule from there"
    )
