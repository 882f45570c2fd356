"""`cifarlab recipes`: list the built-in recipes, or print one resolved."""

from __future__ import annotations

import argparse

from cifarlab.cli.common import COMMON


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipes",
        parents=[COMMON],
        help="list built-in recipes or show one",
        description="List the built-in recipes, or print one fully resolved as TOML.",
    )
    p.add_argument("name", nargs="?", metavar="NAME|FILE", help="print this recipe, resolved")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field before printing",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarlab.recipe import builtin_recipes, load_recipe

    if args.name:
        print(load_recipe(args.name, args.overrides).to_toml(), end="")
        return 0
    for name in builtin_recipes():
        print(f"{name:<16} {load_recipe(name).description}")
    return 0
