"""The owner of study directories: the only code that names a path inside one.

A study directory::

    STUDY/study.json                 what the study is (kind, name, ladder, recipe, seeds, steps)
    STUDY/runs/<step>/seed<k>/       one `cifarlab train` run directory per (step, seed)
    STUDY/summary.{json,csv,md}      the table (cifarlab.studies.summary)
    STUDY/accuracy_by_step.png, curves_grid.png, accuracies_strip.png
    STUDY/study.log                  one line per run started, skipped, finished or failed

Inside a run, :class:`cifarlab.rundir.RunDir` names the paths.
"""

from __future__ import annotations

from pathlib import Path

from cifarlab.jobs.directory import JobDir

STUDY_JSON = "study.json"
STUDY_LOG = "study.log"
RUNS_DIR = "runs"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
ACCURACY_BY_STEP = "accuracy_by_step.png"
CURVES_GRID = "curves_grid.png"
ACCURACIES_STRIP = "accuracies_strip.png"


def run_rel(step: str, seed: int) -> Path:
    """Where the run of (step, seed) lives, relative to the study directory."""
    return Path(RUNS_DIR) / step / f"seed{seed}"


FILES = (
    STUDY_JSON,
    STUDY_LOG,
    SUMMARY_JSON,
    SUMMARY_CSV,
    SUMMARY_MD,
    ACCURACY_BY_STEP,
    CURVES_GRID,
    ACCURACIES_STRIP,
)


class StudyDir(JobDir):
    """A study directory's paths (nothing is read or written here)."""

    FILES = FILES
    KIND = "study directory"

    def is_study(self) -> bool:
        return self.file(STUDY_JSON).is_file()

    def run(self, step: str, seed: int) -> Path:
        """The run directory of (step, seed)."""
        return self.path / run_rel(step, seed)
