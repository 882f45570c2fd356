"""A small search on the bundled sample, run once per session and shared (copied) by tests."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from tunehelpers import SPACE, TINY, quiet


@pytest.fixture(scope="session")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "lr-dropout.toml"
    path.write_text(SPACE, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_spec(space_file):
    from cifarlab.tune.spec import make_spec

    def make(**kwargs):
        return make_spec("seed-baseline", str(space_file), dict(TINY), pruner="none", **kwargs)

    return make


@pytest.fixture(scope="session")
def searched(tmp_path_factory, tiny_spec) -> Path:
    """Three complete trials of the tiny search (pruner none), in this process; copy before
    changing it (``copy_search``)."""
    from cifarlab.tune.search import run_tune

    out = tmp_path_factory.mktemp("searched") / "tune"
    run_tune(tiny_spec(), out, trials=3, data_dir="sample", log=quiet)
    return out


@pytest.fixture
def copy_search(searched, tmp_path):
    def copy() -> Path:
        out = tmp_path / "tune"
        shutil.copytree(searched, out)
        return out

    return copy


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = glob.glob("/usr/lib/postgresql/*/bin/initdb")  # Debian keeps them off PATH
    if not versions:
        return None
    return Path(max(versions, key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0))).parent


def _server_user() -> tuple[list[str], int, int]:
    """How to run the server: initdb and postgres refuse root, so as root they run as the
    'postgres' system user (Debian's package makes it), made here if it is missing."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
            check=True,
        )
        entry = pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"], entry.pw_uid, entry.pw_gid


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster in a temp folder, on a unix socket only (no TCP);
    stopped and removed after the session. Skips only when the server
    programs are not installed. The study goes into the cluster's own 'postgres' database."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server programs (initdb, pg_ctl) not found: install the distribution's "
            "postgresql package (apt-get install postgresql; .ci/run does)"
        )
    run_as, uid, gid = _server_user()
    root = Path(tempfile.mkdtemp(prefix="cifarlab-pg-"))
    os.chown(root, uid, gid)
    data, log = root / "data", root / "server.log"
    with socket.socket() as s:  # the port names the socket file; a free one all the same
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run(
            [*run_as, bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-N"],
            check=True,
            capture_output=True,
        )
        options = f"-k {root} -p {port} -c listen_addresses='' -c fsync=off"
        subprocess.run(
            [*run_as, bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options]
            + ["start"],
            check=True,
            capture_output=True,
        )
        # The form README documents: no driver named (cifarlab picks an installed one).
        yield f"postgresql://postgres@/postgres?host={root}&port={port}"
    finally:
        subprocess.run(
            [*run_as, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
