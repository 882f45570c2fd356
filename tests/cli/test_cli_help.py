"""Every subcommand answers --help, and the tool answers --version, without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cifarlab import __version__
from cifarlab.cli.main import COMMAND_MODULES

COMMANDS = [m.rsplit(".", 1)[1].removesuffix("_cmd") for m in COMMAND_MODULES]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cifarlab", *args], capture_output=True, text=True)


def test_version():
    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"cifarlab {__version__}"


def test_top_level_help_lists_every_command():
    res = run("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_subcommand_help(name):
    res = run(name, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"usage: cifarlab {name}")
    assert "--debug" in res.stdout


def test_help_does_not_import_torch():
    code = "import sys; from cifarlab.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "False", res.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_a_bad_option_of_every_subcommand_is_one_error_line(name, capsys):
    from cifarlab.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main([name, "--no-such-option"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    # "unrecognized arguments: --no-such-option", or first the positionals it lacks
    assert err.startswith(f"cifarlab: error: {name}: ") and f"cifarlab {name} --help" in err
    assert len(err.splitlines()) == 1 and "usage:" not in err, err


def test_a_bad_choice_is_one_error_line_naming_the_option_and_its_choices(tmp_path):
    res = run("report", str(tmp_path), "--format", "pdf")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("cifarlab: error: report: argument --format: invalid choice")
    assert "'html'" in res.stderr and "'md'" in res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr


def test_a_python_warning_during_a_command_is_one_warning_line(tmp_path):
    """The data cache cannot be written (its folder is under a file): a warning, one line."""
    import os
    import shutil
    from pathlib import Path

    import cifarlab

    sample = Path(cifarlab.__file__).parent / "data" / "sample" / "cifar-10-batches-py"
    shutil.copytree(sample, tmp_path / "data" / "cifar-10-batches-py")
    (tmp_path / "a-file").write_text("")
    env = {**os.environ, "CIFARLAB_CACHE": str(tmp_path / "a-file" / "cache")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "cifarlab",
            "data",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "cifarlab: warning: could not cache decoded image arrays"
    ), res.stderr


def test_the_warning_helper_writes_one_line(capsys):
    from cifarlab import errors

    errors.warn("a message\nover two lines")
    assert capsys.readouterr().err == "cifarlab: warning: a message over two lines\n"
