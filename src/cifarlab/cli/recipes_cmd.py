"""`cifarlab recipes`: list the built-in recipes, or print one resolved."""

from __future__ import annotations

import argparse

from cifarlab.cli import options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "recipes",
        run,
        help="list built-in recipes or show one",
        description="List the built-in recipes, or print one fully resolved as TOML.",
    )
    options.add_name_argument(p, "print this recipe, resolved")
    options.add_set_option(p, "override a field before printing")


def run(args: argparse.Namespace) -> int:
    from cifarlab.recipe import builtin_recipes, load_recipe

    if args.name:
        print(load_recipe(args.name, args.overrides).to_toml(), end="")
        return 0
    for name in builtin_recipes():
        print(f"{name:<16} {load_recipe(name).description}")
    return 0
