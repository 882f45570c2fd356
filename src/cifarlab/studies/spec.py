"""A study's definition: what ``study.json`` holds, and the runs it plans.

A study is a kind (ablation or seeds), a name, the recipe changes of each step and the
seeds; its runs are ordered seed-major (every step of seed 0, then of seed 1, ...), each
``runs/<step>/seed<k>/`` under the study directory. The runner trains them
(cifarlab.studies.runner); the summary and the figures read them back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarlab.atomic import write_json
from cifarlab.errors import RecipeError
from cifarlab.jobs.directory import start_dir
from cifarlab.recipe import first_difference, load_recipe
from cifarlab.rundir import RunDir
from cifarlab.studies import StudyError
from cifarlab.studies.ladder import Ladder, StudyStep, cumulative_steps, leave_one_out_steps
from cifarlab.studies.studydir import STUDY_JSON as STUDY_JSON  # the report reads it here
from cifarlab.studies.studydir import StudyDir, run_rel

FORMAT = "cifarlab-study"
FORMAT_VERSION = 1
KINDS = ("ablation", "seeds")
MODES = ("cumulative", "leave-one-out", "seeds")


@dataclass(frozen=True)
class PlannedRun:
    """One (step, seed) of a study; ``index`` is its place in the study's fixed order."""

    index: int
    step: str
    seed: int

    @property
    def rel(self) -> Path:
        return run_rel(self.step, self.seed)


@dataclass
class StudySpec:
    """What a study runs: ``steps`` x ``seeds`` runs of ``recipe`` with each step's overrides.

    ``overrides`` (the command's ``--set``) apply to every run after the step's own changes,
    e.g. ``train.epochs`` for a quick look at a whole ladder.
    """

    kind: str  # one of KINDS
    name: str
    recipe: str  # the base recipe: built-in name or file
    seeds: list[int]
    steps: list[StudyStep]
    ladder: str | None = None
    mode: str = "cumulative"  # one of MODES
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # Round-tripped through JSON so that comparing with a stored study.json is exact.
        return json.loads(
            json.dumps(
                {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "kind": self.kind,
                    "name": self.name,
                    "mode": self.mode,
                    "ladder": self.ladder,
                    "recipe": self.recipe,
                    "seeds": list(self.seeds),
                    "overrides": dict(self.overrides),
                    "steps": [s.to_json() for s in self.steps],
                }
            )
        )

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StudySpec:
        return cls(
            kind=raw["kind"],
            name=raw["name"],
            recipe=raw["recipe"],
            seeds=[int(s) for s in raw["seeds"]],
            steps=[StudyStep.from_json(s) for s in raw["steps"]],
            ladder=raw.get("ladder"),
            mode=raw.get("mode", "seeds" if raw["kind"] == "seeds" else "cumulative"),
            overrides=dict(raw.get("overrides", {})),
        )

    def runs(self) -> list[PlannedRun]:
        """Every (step, seed), seed-major; the order that indexes shards."""
        out = []
        for seed in self.seeds:
            for step in self.steps:
                out.append(PlannedRun(len(out), step.name, seed))
        return out

    def step(self, name: str) -> StudyStep:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def run_overrides(self, step: StudyStep, seed: int) -> dict[str, Any]:
        """The overrides of one run: a name for the step, its changes, the study's --set, seed."""
        out: dict[str, Any] = {}
        if self.kind == "ablation":
            out["name"] = f"{self.name}/{step.name}"
            if step.description:
                out["description"] = step.description
        out.update(step.overrides)
        out.update(self.overrides)
        out["seed"] = seed
        return out


# --------------------------------------------------------------------------- building studies


def ablation_study(
    ladder: Ladder,
    seeds: list[int],
    leave_one_out: bool = False,
    overrides: dict[str, Any] | None = None,
) -> StudySpec:
    """A cumulative (or leave-one-out) study of ``ladder`` with the given seeds."""
    steps = leave_one_out_steps(ladder) if leave_one_out else cumulative_steps(ladder)
    study = StudySpec(
        kind="ablation",
        name=ladder.name + ("-loo" if leave_one_out else ""),
        recipe=ladder.base,
        seeds=_check_seeds(seeds),
        steps=steps,
        ladder=ladder.name,
        mode="leave-one-out" if leave_one_out else "cumulative",
        overrides=dict(overrides or {}),
    )
    _check_overrides(study)
    return study


def seed_study(recipe: str, seeds: list[int], overrides: dict[str, Any] | None = None) -> StudySpec:
    """The same recipe trained once per seed: one step, named after the recipe."""

    name = re.sub(r"[^A-Za-z0-9_.+=-]", "-", load_recipe(recipe).name).lstrip("-") or "recipe"
    study = StudySpec(
        kind="seeds",
        name=name,
        recipe=str(recipe),
        seeds=_check_seeds(seeds),
        steps=[StudyStep(name=name, overrides={}, changes={})],
        mode="seeds",
        overrides=dict(overrides or {}),
    )
    _check_overrides(study)
    return study


def _check_seeds(seeds: list[int]) -> list[int]:
    if not seeds:
        raise StudyError("seeds: a study needs at least one seed (--seeds N or --seed-list)")
    if any(s < 0 for s in seeds):
        raise StudyError(f"seeds: must be >= 0, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"seeds: each seed once, got {seeds}")
    return list(seeds)


def _check_overrides(study: StudySpec) -> None:
    """Every run's recipe must resolve: fail before any training, naming the step."""

    for step in study.steps:
        try:
            load_recipe(study.recipe, study.run_overrides(step, study.seeds[0]))
        except RecipeError as exc:
            raise RecipeError(f"study {study.name!r}, step {step.name!r}: {exc}") from None


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based: 0 <= i < n) -> (i, n)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise StudyError(
            f"--shard {text!r}: expected i/n with 0 <= i < n (0-based), e.g. --shard 0/4 ... 3/4"
        )
    return int(m.group(1)), int(m.group(2))


def shard_runs(runs: list[PlannedRun], shard: tuple[int, int] | None) -> list[PlannedRun]:
    """The runs of shard (i, n): index % n == i. None: every run."""
    if shard is None:
        return list(runs)
    i, n = shard
    return [r for r in runs if r.index % n == i]


# --------------------------------------------------------------------------- study directories


def read_study(study_dir: str | Path) -> StudySpec:
    """The study defined by ``study_dir/study.json``."""
    path = StudyDir(study_dir).file(STUDY_JSON)
    if not path.is_file():
        raise StudyError(
            f"{path}: not found; {study_dir} is not a study directory "
            f"(made by cifarlab ablate or cifarlab seeds)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            raise ValueError(f"no '{FORMAT}' format tag")
        return StudySpec.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StudyError(f"{path}: damaged or not a cifarlab study ({exc})") from None


def init_study_dir(study: StudySpec, study_dir: str | Path) -> None:
    """Write study.json, or check that the one there describes the same study."""

    path = StudyDir(study_dir).file(STUDY_JSON)
    wanted = study.to_json()
    with start_dir(
        path,
        wanted,
        what="study",
        error=StudyError,
        read=lambda p: read_study(p.parent).to_json(),
        differ=first_difference,
        write=lambda: write_json(path, wanted),
    ):
        pass


def is_finished(run_dir: Path) -> bool:
    return RunDir(run_dir).is_finished()
