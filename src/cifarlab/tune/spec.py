"""A search's definition: the starting recipe, the space, and how trials are seeded and
pruned (what tune.json holds, and what every worker of one study must share); the command's
numbers, checked before anything is written."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_text
from cifarlab.jobs.pool import check_jobs
from cifarlab.recipe import dumps_toml, load_recipe
from cifarlab.tune import TuneError
from cifarlab.tune.results import FORMAT, FORMAT_VERSION, START_RECIPE, TuneDir
from cifarlab.tune.space import SearchSpace, builtin_spaces, load_space

PRUNERS = ("median", "hyperband", "none")
OBJECTIVE = "validation accuracy (%) at the run's last evaluation point"
# --trials at most: 10x the top of the budget Optuna's documentation recommends for its TPE
# sampler (100 to 1,000 trials); summary.json, rewritten after every trial, lists every one.
MAX_TRIALS = 10_000
HEARTBEAT_S = 60  # Optuna's heartbeat interval; a trial silent for twice this is stale
POSITIONS = 1000  # intermediate values are reported at the position in the run, per mille


@dataclass
class TuneSpec:
    """What a search is: the starting recipe, the space, and how trials are seeded and pruned.

    ``start`` is the resolved starting recipe (the recipe with the command's ``--set``), so a
    search does not depend on a recipe file staying as it was, and workers on other machines
    are checked to search the very same recipe.
    """

    recipe: str  # the recipe as given: a built-in name or a file
    start: dict[str, Any]  # the resolved starting recipe
    space: SearchSpace
    study: str  # the Optuna study's name
    overrides: dict[str, Any] = field(default_factory=dict)  # the command's --set
    storage: str | None = None  # None: OUT/study.db; else the URL, its password hidden
    pruner: str = "median"  # one of PRUNERS
    prune_startup: int = 5  # complete trials before the median pruner prunes
    prune_warmup: float = 0.25  # fraction of every run never pruned
    vary_seed: bool = False  # trial k trains with seed (recipe seed + k); else all the same

    def definition(self) -> dict[str, Any]:
        """What every worker of one study must share (the study keeps it as an attribute)."""
        return _json(
            {
                "start": self.start,
                "space": self.space.to_json()["params"],
                "objective": OBJECTIVE,
                "pruner": {
                    "name": self.pruner,
                    "startup": self.prune_startup,
                    "warmup": self.prune_warmup,
                },
                "vary_seed": self.vary_seed,
            }
        )

    def to_json(self) -> dict[str, Any]:
        return _json(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "recipe": self.recipe,
                "space_name": self.space.name,
                "overrides": self.overrides,
                "study": self.study,
                "storage": self.storage,
                **self.definition(),
            }
        )


def make_spec(
    recipe: str | Path,
    space: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    study: str | None = None,
    pruner: str = "median",
    prune_startup: int = 5,
    prune_warmup: float = 0.25,
    vary_seed: bool = False,
) -> TuneSpec:
    """A search as the command defines it: the starting recipe (``recipe`` with
    ``overrides``), the space (default: the built-in one named after the recipe), the study
    name (default: the recipe's name, with the space's when they differ). Checked."""
    overrides = dict(overrides or {})
    start = load_recipe(recipe, overrides)  # fail fast, before any data or database
    if space is None:
        if start.name not in builtin_spaces():
            raise TuneError(
                f"--space: no built-in space for recipe {start.name!r} (built-in: "
                f"{', '.join(builtin_spaces())}); give --space FILE"
            )
        space = start.name
    searched = load_space(space, start)
    name = study or (start.name if searched.name == start.name else f"{start.name}-{searched.name}")
    spec = TuneSpec(
        recipe=str(recipe),
        start=start.to_dict(),
        space=searched,
        study=name,
        overrides=overrides,
        pruner=pruner,
        prune_startup=prune_startup,
        prune_warmup=prune_warmup,
        vary_seed=vary_seed,
    )
    check_options(spec)
    return spec


def _json(obj: Any) -> Any:
    """Round-tripped through JSON, so that comparing with a stored copy is exact."""
    return json.loads(json.dumps(obj))


def check_options(spec: TuneSpec) -> None:
    """Refuse, before anything trains, a search that could not measure what it claims."""
    start = load_recipe(dict(spec.start))
    if start.data.val_fraction <= 0:
        raise TuneError(
            f"recipe {spec.recipe}: holds out no validation images (data.val_fraction = "
            f"{start.data.val_fraction:g}) and a search is judged on validation accuracy, never "
            f"the test set; add --set data.val_fraction=0.1"
        )
    if spec.pruner not in PRUNERS:
        raise TuneError(f"--pruner {spec.pruner!r}: choose one of {', '.join(PRUNERS)}")
    if spec.prune_startup < 0:
        raise TuneError(f"--prune-startup {spec.prune_startup}: must be >= 0")
    if not 0 <= spec.prune_warmup < 1:
        raise TuneError(f"--prune-warmup {spec.prune_warmup:g}: must be in [0, 1)")
    if not spec.study or len(spec.study) > 200:
        raise TuneError(f"--study {spec.study!r}: give a name of 1 to 200 characters")


def check_run_options(trials: int, jobs: int, heartbeat: int, timeout: float | None) -> None:
    """The command's numbers, checked before anything is written or opened."""
    if not 0 <= trials <= MAX_TRIALS:
        raise TuneError(
            f"--trials {trials}: must be in [0, {MAX_TRIALS}] (10x the most trials Optuna "
            f"recommends for its TPE sampler; each trial is a training run)"
        )
    check_jobs(jobs, TuneError)
    if heartbeat < 1:
        raise TuneError(f"--heartbeat {heartbeat}: must be a whole number of seconds >= 1")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise TuneError(f"--timeout {timeout:g}: give a number of seconds > 0")


def write_start_recipe(spec: TuneSpec, out: Path) -> Path:
    """OUT/start.toml: the starting recipe as the search resolved it (the confirmation
    trains this, so a recipe file edited since cannot change what is compared)."""
    head = f"# The starting recipe of cifarlab tune's study {spec.study!r}: {spec.recipe}"
    head += "".join(f" --set {k}={fmt(v)}" for k, v in spec.overrides.items()) + "\n"
    return write_text(TuneDir(out).file(START_RECIPE), head + dumps_toml(spec.start))


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


def fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
