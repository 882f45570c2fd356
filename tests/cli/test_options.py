"""The commands' parsers: every command module is registered (a missing one is an error that
names it), and an option that several commands take is one declaration (cli.options): the
same flag, type, metavar and choices everywhere, only its help line and default its own."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import pytest

import cifarlab.cli
from cifarlab.cli import main as cli_main
from cifarlab.export import FORMATS
from cifarlab.recipe import DEVICES


def _parsers(parser: argparse.ArgumentParser, path: str = "cifarlab"):
    """(command path, parser) for the tool and every command and nested action."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _declaration(action: argparse.Action) -> tuple:
    """What a shared option must agree on between commands (not its help line or default)."""
    return (
        type(action),
        tuple(action.option_strings),
        action.dest,
        action.nargs,
        action.const,
        action.type,
        tuple(action.choices) if action.choices is not None else None,
        action.metavar,
    )


SHARED = ("--set", "--device", "--jobs", "--seed", "--json", "--no-figures", "--data-dir")


@pytest.mark.parametrize("flag", SHARED)
def test_an_option_of_several_commands_is_declared_alike_in_each(flag):
    found = {
        path: action
        for path, parser in _parsers(cli_main.build_parser())
        for action in parser._actions
        if flag in action.option_strings
    }
    assert len(found) >= 2, f"{flag}: now in {sorted(found)} only; drop it from SHARED"
    first, *_ = found.values()
    for path, action in found.items():
        assert _declaration(action) == _declaration(first), f"{path} {flag}"


def test_choices_are_the_librarys_own():
    parsers = dict(_parsers(cli_main.build_parser()))
    devices = [a for p in parsers.values() for a in p._actions if "--device" in a.option_strings]
    assert devices and all(a.choices is DEVICES for a in devices)
    (fmt,) = (a for a in parsers["cifarlab export"]._actions if "--format" in a.option_strings)
    assert fmt.choices is FORMATS


def test_every_command_module_in_the_package_is_registered():
    modules = {
        f"cifarlab.cli.{m.name}"
        for m in pkgutil.iter_modules(cifarlab.cli.__path__)
        if m.name.endswith("_cmd")
    }
    assert modules == set(cli_main.COMMAND_MODULES)


def test_a_listed_command_module_that_is_missing_fails_naming_it(monkeypatch):
    missing = "cifarlab.cli.no_such_cmd"
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", [*cli_main.COMMAND_MODULES, missing])
    with pytest.raises(ModuleNotFoundError) as raised:
        cli_main.build_parser()
    assert raised.value.name == missing
    assert missing in str(raised.value) and "COMMAND_MODULES" in str(raised.value)


def test_a_missing_dependency_of_a_command_module_is_its_own_error(monkeypatch, tmp_path):
    """Not reworded as a missing command: the line names the dependency that is not there."""
    (tmp_path / "needs_a_dependency_cmd.py").write_text("import no_such_dependency_xyz\n")
    # Not monkeypatch.syspath_prepend: it calls into pkg_resources, which another test of
    # the suite may have left half-imported.
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    importlib.invalidate_caches()
    monkeypatch.setattr(
        cli_main, "COMMAND_MODULES", [*cli_main.COMMAND_MODULES, "needs_a_dependency_cmd"]
    )
    monkeypatch.delitem(sys.modules, "needs_a_dependency_cmd", raising=False)
    with pytest.raises(ModuleNotFoundError) as raised:
        cli_main.build_parser()
    assert raised.value.name == "no_such_dependency_xyz"
