"""The report's inputs: run and study directories, read through the modules that own them.

A run directory is read with :class:`cifarlab.rundir.RunDir` (metrics.json, history.json,
recipe.toml, its PNGs; an unfinished run's curves and recipe from its latest checkpoint); a
study directory with :func:`cifarlab.studies.spec.read_study` (study.json) and its runs
``runs/<step>/seed<k>/`` likewise. A study's statistics are
:func:`cifarlab.studies.summary.summarize` of its finished runs (with their final training
accuracy and loss): the numbers
``cifarlab ablate/seeds`` write to summary.json, recomputed here so that the report of a
study still running is up to date. Nothing in the input directories is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

from cifarlab.data import LabelledImages, datasets
from cifarlab.data.datasets import DEFAULT as DEFAULT_DATASET
from cifarlab.data.datasets import DatasetSpec
from cifarlab.errors import CifarlabError
from cifarlab.report import ReportError
from cifarlab.rundir import RunDir
from cifarlab.studies.spec import STUDY_JSON, StudySpec, read_study
from cifarlab.studies.studydir import StudyDir
from cifarlab.studies.summary import collect_training, summarize
from cifarlab.tune.results import is_tune_dir


@dataclass
class RunInput:
    """One run directory as read from disk (any part may be missing)."""

    path: Path
    label: str
    metrics: dict[str, Any] | None
    history: dict[str, list[Any]] | None
    recipe: dict[str, Any] | None

    @property
    def accuracy(self) -> float | None:
        """Test accuracy in percent."""
        if self.metrics and self.metrics.get("test_accuracy") is not None:
            return float(self.metrics["test_accuracy"]) * 100
        return None

    @property
    def model_key(self) -> tuple[str, str] | None:
        """(model name, its options as sorted JSON): one key per distinct model."""
        model = (self.recipe or {}).get("model") or {}
        name = model.get("name") or (self.metrics or {}).get("model")
        if not name:
            return None
        return str(name), json.dumps(model.get("options") or {}, sort_keys=True)

    def figure(self, name: str) -> bytes | None:
        """One of the run's PNGs (rundir.RUN_FIGURES) as bytes; None when missing or empty."""
        return read_png(RunDir(self.path).figure_path(name))


@dataclass
class StudyInput:
    """One study directory: its definition, its runs per step and its summary."""

    path: Path
    spec: StudySpec
    runs: dict[str, list[RunInput]]  # step -> its runs found on disk, in seed order
    summary: dict[str, Any]  # cifarlab.studies.summary.summarize of the finished runs

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def name(self) -> str:
        return self.spec.name

    def step_names(self) -> list[str]:
        return [s.name for s in self.spec.steps]

    def rows(self) -> list[dict[str, Any]]:
        """The summary's rows of the steps with at least one finished run."""
        return [r for r in self.summary["rows"] if r["n"]]

    def references(self) -> dict[str, float]:
        """Published test accuracies (%) per step, from the study's ladder (its steps'
        ``reference``; e.g. the seed report's numbers in studies/ladders/seed-report.toml)."""
        return {s.name: s.reference for s in self.spec.steps if s.reference is not None}


def read_png(path: Path) -> bytes | None:
    """A PNG a run directory holds, as bytes; None when missing or empty."""
    try:
        png = path.read_bytes() if path.is_file() else b""
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return png or None


def is_run_dir(path: Path) -> bool:
    return RunDir(path).is_run()


def is_study_dir(path: Path) -> bool:
    return StudyDir(path).is_study()


def read_run_input(path: str | Path, label: str | None = None) -> RunInput:
    """A run directory's metrics, history and resolved recipe (those that exist)."""
    run = RunDir(path, error=ReportError)
    metrics = _mapping(run.metrics(), run.metrics_path)
    history = _mapping(run.history(), run.history_path)
    recipe = run.recipe()
    if (history is None or recipe is None) and run.has_checkpoint():
        latest = run.latest_checkpoint()  # an unfinished run: its checkpoint holds both
        if latest is not None:
            payload = latest[1]
            history = history if history is not None else payload.get("history")
            recipe = recipe if recipe is not None else payload.get("recipe")
    accuracy = (metrics or {}).get("test_accuracy")
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, Real)):
        raise ReportError(f"{run.metrics_path}: test_accuracy is {accuracy!r}, not a number")
    return RunInput(
        path=run.path,
        label=label or run.path.name,
        metrics=metrics,
        history=history,
        recipe=recipe,
    )


def _mapping(raw: Any, path: Path) -> dict[str, Any] | None:
    if raw is not None and not isinstance(raw, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return raw


def read_study_input(path: str | Path) -> StudyInput:
    """A study directory: study.json, every run of its plan found under runs/<step>/, and
    the summary of the finished ones."""
    path = Path(path)
    spec = read_study(path)
    runs: dict[str, list[RunInput]] = {}
    results: dict[str, dict[int, dict[str, Any]]] = {}
    # Seed-major plan order, grouped by step: each step's runs end up in seed order.
    for planned in spec.runs():
        run_dir = path / planned.rel
        if not is_run_dir(run_dir):
            continue
        run = read_run_input(run_dir, label=f"{spec.name}: {planned.step}/{run_dir.name}")
        runs.setdefault(planned.step, []).append(run)
        if run.accuracy is not None:
            results.setdefault(planned.step, {})[planned.seed] = run.metrics
    runs = {s.name: runs[s.name] for s in spec.steps if s.name in runs}  # in step order
    summary = summarize(spec, results, collect_training(path, results))
    return StudyInput(path=path, spec=spec, runs=runs, summary=summary)


def read_inputs(paths: list[str | Path]) -> tuple[list[RunInput], list[StudyInput]]:
    """Sort the given directories into runs and studies; anything else is an error."""
    runs: list[RunInput] = []
    studies: list[StudyInput] = []
    if not paths:
        raise ReportError("give at least one run or study directory")
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ReportError(f"{path}: no such directory (expected a run or study directory)")
        if is_study_dir(path):
            studies.append(read_study_input(path))
        elif is_tune_dir(path):
            continue  # cifarlab tune: its own section (report/tune_section.py) reads it
        elif is_run_dir(path):
            runs.append(read_run_input(path))
        else:
            raise ReportError(
                f"{path}: not a run directory (no metrics.json, history.json or checkpoint) "
                f"nor a study directory (no {STUDY_JSON})"
            )
    return runs, studies


def run_dataset(info: dict[str, Any], runs: list[RunInput]) -> DatasetSpec:
    """The dataset the runs used: the spec their metrics record (``dataset_spec``), else
    their recipe's data section, else the dataset named in ``info`` (CIFAR-10 for runs from
    before other datasets were read)."""
    recorded = info.get("dataset_spec")
    if isinstance(recorded, dict):
        try:
            return DatasetSpec(**recorded)
        except TypeError:
            pass  # a record from another version: fall back on the recipe
    data = next((((r.recipe or {}).get("data") or {}) for r in runs if r.recipe), {})
    name = str(info.get("dataset") or data.get("dataset") or DEFAULT_DATASET)
    fields = {k: data[k] for k in ("image_size", "split_seed", "test_fraction") if k in data}
    try:
        return DatasetSpec(name, **fields)
    except TypeError:
        return DatasetSpec(name)


def find_data(
    info: dict[str, Any], runs: list[RunInput], data_dir: str | None
) -> tuple[LabelledImages | None, str | None]:
    """The dataset the runs used (``info``: a run's metrics["data"]; its ``dataset_spec``,
    else the runs' recipe, names which), found without any download: (data, None), or
    (None, why not)."""
    source = str(info.get("source", ""))
    spec = run_dataset(info, runs)
    try:
        if data_dir is not None:
            data = datasets.load_dataset(spec, data_dir, download=False)
        elif info.get("spec") == "sample" or source.startswith("bundled sample"):
            data = datasets.load_dataset(spec, "sample", download=False)
        else:
            recipe_source = next(
                (((r.recipe or {}).get("data") or {}).get("source") for r in runs if r.recipe),
                None,
            )
            where = recipe_source if recipe_source not in (None, "auto", "sample") else None
            if where is None and spec.name == "folder":
                return (
                    None,
                    "the runs' image folders are not named in their recipe; pass --data-dir",
                )
            data = datasets.load_dataset(spec, where, download=False)
    except CifarlabError as exc:
        return None, f"the dataset was not found ({str(exc)[:160]}); pass --data-dir"
    if data.dataset != spec.name:
        return None, (
            f"the data found ({data.source}) is {data.dataset}, and the runs used {spec.name}; "
            f"pass --data-dir"
        )
    n_train = (info.get("n_train") or 0) + (info.get("n_val") or 0)
    if n_train and (len(data.train_labels), len(data.test_labels)) != (n_train, info.get("n_test")):
        return None, (
            f"the data found ({data.source}) is not what the runs used "
            f"({n_train:,} train + validation, {info.get('n_test'):,} test); pass --data-dir"
        )
    return data, None
