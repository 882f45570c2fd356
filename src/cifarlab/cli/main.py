"""`cifarlab` entry point.

Each subcommand lives in its own module under ``cifarlab.cli`` and exposes
``add_parser(subparsers)`` (which registers the subcommand and sets
``func=run``) and ``run(args) -> int``. The library never imports this package.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cifarlab.errors import CifarlabError
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifarlab",
        description="Image classification on CIFAR-10: data, training, evaluation, studies, reports.",
    )
    parser.add_argument("--version", action="version", version=f"cifarlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise
            continue  # a subcommand not built yet in this checkout
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CifarlabError as exc:
        if args.debug:
            raise
        print(f"cifarlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cifarlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
