"""`cifarlab` entry point.

Each subcommand lives in its own module under ``cifarlab.cli``, listed in
``COMMAND_MODULES``, and exposes ``add_parser(subparsers)`` (which registers the
subcommand with ``cli.options.add_command``, its ``run`` as ``func``) and
``run(args) -> int``. The library never imports this package.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
import warnings

from cifarlab.errors import CifarlabError, warn
from cifarlab.version import __version__

# Order is the order shown in `cifarlab --help`.
COMMAND_MODULES = [
    "cifarlab.cli.data_cmd",
    "cifarlab.cli.models_cmd",
    "cifarlab.cli.recipes_cmd",
    "cifarlab.cli.train_cmd",
    "cifarlab.cli.evaluate_cmd",
    "cifarlab.cli.ablate_cmd",
    "cifarlab.cli.seeds_cmd",
    "cifarlab.cli.studies_cmd",
    "cifarlab.cli.tune_cmd",
    "cifarlab.cli.report_cmd",
    "cifarlab.cli.predict_cmd",
    "cifarlab.cli.export_cmd",
    "cifarlab.cli.bench_cmd",
]


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``cifarlab: error: ...``, exit 2.

    Subcommand parsers are made by ``add_subparsers`` in this class too, so every subcommand
    (and a nested one, e.g. ``studies merge``) answers a bad option or value in one line
    instead of argparse's usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("cifarlab").strip()
        where = f"{command}: " if command else ""
        line = " ".join(f"{where}{message}".split())
        self.exit(2, f"cifarlab: error: {line} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cifarlab",
        description=(
            "Image classification on CIFAR-10, CIFAR-100 and your own image folders: "
            "data, training, evaluation, studies, reports."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cifarlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        _command_module(name).add_parser(sub)
    return parser


def _command_module(name: str) -> types.ModuleType:
    """The module of a listed command. One that is not there is a packaging bug, said at
    once with its name, never a command that quietly vanishes from `cifarlab --help`."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # a missing dependency inside the module: its own error
            raise
        raise ModuleNotFoundError(
            f"cifarlab: command module {name} is listed in cifarlab.cli.main.COMMAND_MODULES "
            f"but is not installed (a packaging bug: reinstall cifarlab, or drop the entry)",
            name=name,
        ) from exc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the subcommand's parser, so the line points at its --help
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except CifarlabError as exc:
        if args.debug:
            raise
        print(f"cifarlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cifarlab: interrupted", file=sys.stderr)
        return 130


def _command_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The subcommand's own parser (the top one when there is none)."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(getattr(args, "command", None), parser)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's warnings (a cache that could not be written, a library's notice) as the
    project's one warning line, not a file:line block."""
    warn(str(message))


if __name__ == "__main__":
    raise SystemExit(main())
