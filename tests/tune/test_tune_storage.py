"""Storages as users write them: URLs without a driver, a refused in-memory SQLite, and a start
that fails leaving nothing behind. (A real PostgreSQL server: test_tune_postgres.py.)"""

from __future__ import annotations

import importlib.util
import json

import pytest
from tunehelpers import cli, quiet, tiny_set

from cifarlab.tune import TuneError
from cifarlab.tune.search import run_tune


def start(spec, out, storage=None, **kw):
    """The command's start only: open (or make) the study and the directory, train nothing."""
    return run_tune(spec, out, trials=0, storage=storage, data_dir="sample", log=quiet, **kw)


def no_server(tmp_path, scheme: str = "postgresql") -> str:
    """A URL whose server is nowhere: a unix socket in a folder that does not exist."""
    return f"{scheme}://cifarlab:s3cret@/tune?host={tmp_path / 'no-server'}&port=1"


def test_mysql_url_is_opened_with_pymysql_or_names_what_mysql_needs(tmp_path, tiny_spec):
    out = tmp_path / "tune"
    with pytest.raises(TuneError) as caught:
        start(tiny_spec(), out, storage="mysql://cifarlab:s3cret@127.0.0.1:1/tune")
    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert message.startswith("--storage mysql://cifarlab:***@127.0.0.1:1/tune: ")
    assert "psycopg" not in message and "PostgreSQL" not in message
    if importlib.util.find_spec("pymysql") or importlib.util.find_spec("MySQLdb"):
        assert "cannot open the study" in message  # a driver loaded; no server answers
    else:
        assert "driver mysqldb is not installed" in message and "pip install PyMySQL" in message
    assert not out.exists()


def test_postgresql_url_without_a_driver_opens_with_the_installed_one(tmp_path, tiny_spec):
    lines: list[str] = []
    out = tmp_path / "tune"
    with pytest.raises(TuneError) as caught:
        run_tune(tiny_spec(), out, trials=0, storage=no_server(tmp_path), log=lines.append)
    message = str(caught.value)
    # Not "driver is missing": the driver the tune extra installs (psycopg2) or psycopg 3
    # opened the URL, and only the server, which is nowhere, failed.
    assert "driver" not in message and "cannot open the study" in message, message
    assert "no-server" in message and "s3cret" not in message
    assert not out.exists()


def test_in_memory_sqlite_is_refused_with_one_line_and_nothing_written(tmp_path, space_file):
    out = tmp_path / "tune"
    cmd = ["tune", "--recipe", "seed-baseline", "--space", str(space_file)]
    cmd += [*tiny_set({"train.epochs": 0.2}), "--pruner", "none", "--trials", "1"]
    cmd += ["--data-dir", "sample", "--out", str(out)]
    for storage in ("sqlite:///", "sqlite://", "sqlite:///:memory:"):
        r = cli(*cmd, "--storage", storage)
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"cifarlab: error: --storage {storage}: an in-memory SQLite")
        assert "trial" not in r.stdout and not out.exists()


def test_a_failed_start_leaves_nothing_and_the_corrected_command_then_runs(tmp_path, tiny_spec):
    out = tmp_path / "new" / "tune"  # neither folder exists yet
    with pytest.raises(TuneError, match="cannot open the study|driver"):
        start(tiny_spec(), out, storage=no_server(tmp_path, "postgresql+psycopg2"))
    assert not (tmp_path / "new").exists()
    with pytest.raises(TuneError):
        start(tiny_spec(), out, storage="postgresql://")  # no database named either
    assert not (tmp_path / "new").exists()

    # The corrected command (the default storage) is not taken for another search.
    summary = start(tiny_spec(), out)
    assert summary["storage"] == "study.db"
    assert json.loads((out / "tune.json").read_text())["storage"] is None
    assert sorted(p.name for p in out.iterdir()) == [
        "start.toml",
        "study.db",
        "summary.json",
        "trials",
        "tune.json",
        "tune.log",
        "workers",
    ]


def test_a_failed_start_of_a_resumed_search_keeps_all_of_it(copy_search, tiny_spec, tmp_path):
    out = copy_search()
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(TuneError):  # another storage: tune.json says which one it is
        start(tiny_spec(), out, storage=no_server(tmp_path))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_trials_and_timeout_are_checked_before_anything_is_written(tmp_path, tiny_spec):
    out = tmp_path / "tune"
    for kw, what in (
        ({"trials": 10_001, "timeout": 60.0}, "--trials 10001: must be in [0, 10000]"),
        ({"trials": 1, "timeout": 0.0}, "--timeout 0: give a number of seconds > 0"),
        ({"trials": 1, "timeout": float("nan")}, "--timeout nan"),
    ):
        with pytest.raises(TuneError, match=what.replace("[", r"\[").replace("]", r"\]")):
            run_tune(tiny_spec(), out, data_dir="sample", log=quiet, **kw)
    assert not out.exists()


def test_confirm_help_says_a_better_interval_lies_above_zero():
    r = cli("tune", "--help", env={"COLUMNS": "200"})
    assert r.returncode == 0
    confirm = r.stdout.split("\n  --confirm K", 1)[1].split("\n  --set", 1)[0]
    assert "lies above 0" in " ".join(confirm.split()) and "excludes" not in confirm
