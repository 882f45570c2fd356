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
