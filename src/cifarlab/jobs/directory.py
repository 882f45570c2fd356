"""A study's or search's directory as its jobs share it: what its owners have in common
(:class:`JobDir`: cifarlab.studies.studydir.StudyDir, cifarlab.tune.results.TuneDir name the
files), the check that it holds this study or search and no other (:func:`start_dir`), and
its append-only log (:class:`JobLog`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cifarlab.errors import CifarlabError


class JobDir:
    """A directory of jobs: a study's or a search's. Its own files are the names in the
    subclass's ``FILES``; only the subclass names other paths inside it."""

    FILES: tuple[str, ...] = ()
    KIND = "directory of jobs"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        """One of the directory's own files (a name in FILES)."""
        if name not in self.FILES:
            raise ValueError(f"not a file of a {self.KIND}: {name}")
        return self.path / name


@contextlib.contextmanager
def start_dir(
    path: Path,
    definition: dict[str, Any],
    *,
    what: str,
    error: type[CifarlabError],
    read: Callable[[Path], Any],
    differ: Callable[[Any, Any], str | None],
    write: Callable[[], None],
) -> Iterator[bool]:
    """Start (or resume) the directory whose definition file is ``path`` (study.json,
    tune.json) around a block; yields True when it resumes.

    A definition already there (``read(path)``) must be this very ``definition``, else
    ``error`` names the first field that differs (``differ``) and nothing is touched. A new
    directory is made before the block and gets its files (``write()``) after it; when the
    block or the writing fails, everything the start made is removed again, so the corrected
    command starts afresh."""
    if path.is_file():
        where = differ(read(path), json.loads(json.dumps(definition)))
        if where is not None:
            raise error(
                f"{path}: holds another {what} ({where} differs); rerun with its exact "
                f"options to resume it, or choose another --out"
            )
        yield True
        return
    out = path.parent
    made = [p for p in (out, *out.parents) if not p.exists()]  # innermost first
    out.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(out))
    try:
        yield False
        write()
    except BaseException:
        for name in set(os.listdir(out)) - before:
            if (out / name).is_dir() and not (out / name).is_symlink():
                shutil.rmtree(out / name, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    (out / name).unlink()
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never another's files
        raise


class JobLog:
    """Lines to the console callback and, appended with time and pid, to ``path`` (a study's
    study.log, a search's tune.log): every process of a study or search adds to one file."""

    def __init__(self, path: Path, log: Callable[[str], None] = print) -> None:
        self.path = Path(path)
        self.log = log

    def __call__(self, line: str) -> None:
        self.log(line)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {line}\n")
