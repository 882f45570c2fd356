"""Checks shared by several subcommands: the data folder, and the folders and files a
command writes (its options are declared in ``cifarlab.cli.options``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path


def check_data_dir(data_dir: str | None) -> None:
    """--data-dir names a readable folder or tarball ('sample' and None pass). A path that
    is simply not there is left to the data loader, whose line lists the forms it looked for."""
    from cifarlab import paths

    if data_dir is None or data_dir == "sample":
        return
    path = Path(data_dir).expanduser()
    try:
        os.lstat(path)
        absent = False
    except (FileNotFoundError, NotADirectoryError):
        absent = not any(os.path.islink(p) and not os.path.exists(p) for p in path.parents)
    except OSError:
        absent = False  # we may not even look: input_path says so
    if not absent:  # there, but perhaps a FIFO, unreadable, or behind a broken link
        paths.input_path(path, "--data-dir")


def check_run_out(out: str | Path, what: str = "--out") -> Path:
    """A run directory to train into: a new or empty folder, or one holding a run (the loop
    then refuses it or resumes); a folder with anyone else's files is refused."""
    from cifarlab import paths

    return paths.output_dir(out, what, reuse_if=_run_folder, managed=managed_folder)


def _run_folder(folder: Path) -> bool:
    """Holds a run, or nothing but what a run writes (one killed before its first checkpoint)."""
    from cifarlab.rundir import RunDir

    return RunDir(folder).holds_only_run_files()


def check_study_out(out: str | Path, what: str = "--out") -> Path:
    """A study directory to write: a new or empty folder, or one holding a study.json."""
    from cifarlab import paths
    from cifarlab.studies.studydir import StudyDir

    return paths.output_dir(
        out, what, reuse_if=lambda d: StudyDir(d).is_study(), managed=managed_folder
    )


def check_output_file(
    out: str | Path, what: str = "--out", *, reads: Iterable[str | Path] = ()
) -> Path:
    """A file a command writes: not over its inputs ``reads``, nor inside a run, study or
    search directory (cifarlab.paths: what a command may write over); its folder exists."""
    from cifarlab import paths

    return paths.output_file(out, what, reads=reads, managed=managed_folder)


def check_output_dir(
    out: str | Path,
    what: str = "--out",
    *,
    reads: Iterable[str | Path] = (),
    reuse_if: Callable[[Path], bool] | None = None,
) -> Path:
    """A folder a command writes into, under the same rule as :func:`check_output_file`."""
    from cifarlab import paths

    return paths.output_dir(out, what, reads=reads, reuse_if=reuse_if, managed=managed_folder)


def managed_folder(folder: Path) -> str | None:
    """What kind of cifarlab directory ``folder`` is (one a command owns), or None."""
    from cifarlab.rundir import RunDir
    from cifarlab.studies.studydir import StudyDir
    from cifarlab.tune.results import is_tune_dir

    if StudyDir(folder).is_study():
        return "a study directory"
    if is_tune_dir(folder):
        return "a search directory (cifarlab tune)"
    if RunDir(folder).is_run():
        return "a run directory"
    return None
