"""A search's storage: the database URL as a user writes it, resolved to one that opens.

By default a study lives in ``OUT/study.db`` (SQLite). ``--storage URL`` names another
database, in SQLAlchemy's URL form, e.g. ``postgresql://user:pass@host/db`` to share one
study between machines. A URL that names no driver (``postgresql://``, ``mysql://``) means
SQLAlchemy's default driver for that database: psycopg (3) for PostgreSQL since SQLAlchemy
2.1, mysqlclient for MySQL. When that driver is not installed but another that works is
(psycopg2, which the ``tune`` extra installs; PyMySQL), the URL is rewritten to it and one
line says so; when none is, the error names what to install for that database.

An in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``) is refused: each
connection gets its own empty database, so the workers, the heartbeats and the summary would
each see a different study.

Only the URL is resolved here; opening the study is :func:`cifarlab.tune.study.open_study`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cifarlab.tune import TuneError
from cifarlab.tune.results import STUDY_DB, TuneDir

# For a URL that names no driver: the drivers tried, in order, after SQLAlchemy's default.
FALLBACK_DRIVERS = {
    "postgresql": ("psycopg2", "psycopg"),
    "mysql": ("pymysql",),
    "mariadb": ("pymysql",),
}
# What to install, per database, when no driver for it is importable.
INSTALL_HINT = {
    "postgresql": "pip install psycopg2-binary (the driver pip install 'cifarlab[tune]' installs)",
    "mysql": "pip install PyMySQL (then mysql:// works, or write mysql+pymysql://)",
    "mariadb": "pip install PyMySQL (then mariadb:// works, or write mariadb+pymysql://)",
}


@dataclass(frozen=True)
class Storage:
    """A resolved storage: the URL Optuna opens, the one shown, and what was changed."""

    url: str  # what Optuna opens (password included)
    shown: str  # the URL as given, its password hidden: tune.json, the logs, the summary
    note: str | None = None  # one line when the URL was rewritten to an installed driver
    given: bool = True  # False: the default, OUT/study.db


def resolve_storage(out: Path, given: str | None) -> Storage:
    """The storage a search opens: ``given`` (a database URL) checked and, when it names no
    driver and SQLAlchemy's default is missing, rewritten to an installed one; else the
    default SQLite file in ``out``. Bad URLs raise TuneError with one line."""
    if not given:
        url = f"sqlite:///{TuneDir(out).file(STUDY_DB).resolve()}"
        return Storage(url=url, shown=STUDY_DB, given=False)
    try:
        from sqlalchemy.engine import make_url
    except ImportError:
        raise TuneError(
            "cifarlab tune needs Optuna: pip install 'cifarlab[tune]' (optuna 5)"
        ) from None
    try:
        parsed = make_url(given)
        # as written, unless it holds a password (rendering escapes, e.g. ":memory:")
        shown = given if parsed.password is None else parsed.render_as_string(hide_password=True)
        parsed.get_dialect()
    except Exception as exc:  # ArgumentError (no URL), NoSuchModuleError (no such database)
        where = given.split("@")[-1]  # never the password, even of a URL that does not parse
        raise TuneError(
            f"--storage {where!r}: not a database URL SQLAlchemy knows ({exc}); e.g. "
            f"postgresql://user:pass@host/db or sqlite:///path/to/study.db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite" and _in_memory(parsed):
        raise TuneError(
            f"--storage {shown}: an in-memory SQLite database is private to one connection, so "
            f"the workers and the summary would each see an empty study; give a file "
            f"(sqlite:///path/to/study.db) or leave --storage out (OUT/{STUDY_DB})"
        )
    why = _driver_missing(parsed)
    if why is None:
        return Storage(url=given, shown=shown)
    default = parsed.get_dialect().driver
    if "+" in parsed.drivername:  # a driver named: that one, unless the user says otherwise
        raise TuneError(
            f"--storage {shown}: its database driver {default} is not installed ({why}); "
            f"install it, or write {backend}:// to use one that is"
        )
    for driver in FALLBACK_DRIVERS.get(backend, ()):  # no driver named: another that does
        other = parsed.set(drivername=f"{backend}+{driver}")
        if _driver_missing(other) is None:
            note = (
                f"--storage: {backend}:// is opened as {backend}+{driver}:// ({driver} is "
                f"installed; SQLAlchemy's default driver for {backend}, {default}, is not)"
            )
            return Storage(url=other.render_as_string(hide_password=False), shown=shown, note=note)
    hint = INSTALL_HINT.get(backend, f"install the Python driver SQLAlchemy uses for {backend}")
    raise TuneError(
        f"--storage {shown}: its database driver {default} is not installed ({why}); {hint}"
    )


def _in_memory(url) -> bool:
    database = url.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or url.query.get("mode") == "memory"
    )


def _driver_missing(url) -> str | None:
    """Why the URL's driver cannot be imported, or None when it can."""
    try:
        url.get_dialect().import_dbapi()
    except ImportError as exc:
        return str(exc)
    return None
