"""The owner of tune (search) directories: the only code that names a path inside one
(:class:`TuneDir`), and their reader (no Optuna needed: the report uses this).

``cifarlab tune`` keeps the Optuna study in its storage (a database) and, after every trial,
writes a snapshot of it into the directory, ``summary.json``: every trial (state, parameters,
seed, the validation accuracy at each evaluation point), the counts, the best trial and the
parameter importances. A report, or a person, reads the directory without the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifarlab.atomic import read_json
from cifarlab.jobs.directory import JobDir
from cifarlab.tune import TuneError

TUNE_JSON = "tune.json"  # what the search is
SUMMARY_JSON = "summary.json"  # the study as of the last trial that finished
BEST_RECIPE = "best.toml"  # the best trial's resolved recipe
START_RECIPE = "start.toml"  # the resolved starting recipe (the recipe with --set)
STUDY_DB = "study.db"  # the default storage: SQLite
TUNE_LOG = "tune.log"
TRIALS_DIR = "trials"  # trials/0007/: trial 7's run directory
WORKERS_DIR = "workers"  # workers/<id>.lock: held by each live worker process
CONFIRM_DIR = "confirm"  # confirm/start/, confirm/trial-0007/: seed studies
CONFIRM_JSON = "confirm.json"
CONFIRM_MD = "confirm.md"
# In a trial's run directory: which trial it is, and how it ended: "running", "complete",
# "pruned", "failed" (an error) or "killed" (its worker died; "reason" names the retry).
TRIAL_JSON = "trial.json"

FORMAT = "cifarlab-tune"
SUMMARY_FORMAT = "cifarlab-tune-summary"
CONFIRM_FORMAT = "cifarlab-tune-confirm"
FORMAT_VERSION = 1
STATES = ("complete", "pruned", "failed", "running", "waiting")


FILES = (TUNE_JSON, SUMMARY_JSON, BEST_RECIPE, START_RECIPE, STUDY_DB, TUNE_LOG)
FILES += (CONFIRM_JSON, CONFIRM_MD)


class TuneDir(JobDir):
    """A tune directory's paths (nothing is read or written here); the layout is in
    :mod:`cifarlab.tune`'s docstring. Inside a trial's run, :class:`cifarlab.rundir.RunDir`
    names the paths, but for the search's own record (:func:`trial_record`)."""

    FILES = FILES
    KIND = "tune directory"

    def trials(self) -> Path:
        """The folder of the trials' run directories."""
        return self.path / TRIALS_DIR

    def trial(self, number: int) -> Path:
        """Trial ``number``'s run directory."""
        return self.trials() / f"{number:04d}"

    def worker_lock(self, worker: str) -> Path:
        """The lock file a live worker process holds (``worker``: its id)."""
        return self.path / WORKERS_DIR / f"{worker}.lock"

    def confirm_dir(self, name: str) -> Path:
        """The seed study of one side of the confirmation ("start", "trial-0007")."""
        return self.path / CONFIRM_DIR / name


def trial_dir(out: str | Path, number: int) -> Path:
    return TuneDir(out).trial(number)


def trial_record(run_dir: str | Path) -> Path:
    """A trial's trial.json, in its run directory."""
    return Path(run_dir) / TRIAL_JSON


def is_tune_dir(path: str | Path) -> bool:
    return TuneDir(path).file(TUNE_JSON).is_file()


@dataclass
class TuneResult:
    """A tune directory as read from disk: its definition, snapshot and confirmation."""

    path: Path
    spec: dict[str, Any]  # tune.json
    summary: dict[str, Any] | None  # summary.json (None before the first trial finished)
    confirm: dict[str, Any] | None  # confirm.json (None without --confirm)

    @property
    def name(self) -> str:
        return str(self.spec.get("study", self.path.name))


def read_tune_dir(path: str | Path, error: type[Exception] = TuneError) -> TuneResult:
    """tune.json, summary.json and confirm.json of a tune directory; a damaged file raises
    ``error`` with one line naming it."""
    where = TuneDir(path)
    spec = read_json(where.file(TUNE_JSON), error)
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise error(f"{where.file(TUNE_JSON)}: not a cifarlab tune definition (no '{FORMAT}' tag)")
    summary = read_json(where.file(SUMMARY_JSON), error)
    if summary is not None and (
        not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT
    ):
        raise error(f"{where.file(SUMMARY_JSON)}: not a cifarlab tune summary")
    confirm = read_json(where.file(CONFIRM_JSON), error)
    if confirm is not None and (
        not isinstance(confirm, dict) or confirm.get("format") != CONFIRM_FORMAT
    ):
        raise error(f"{where.file(CONFIRM_JSON)}: not a cifarlab tune confirmation")
    return TuneResult(path=where.path, spec=spec, summary=summary, confirm=confirm)
