"""`cifarlab seeds`: train one recipe with several seeds and report the distribution."""

from __future__ import annotations

import argparse

from cifarlab.cli import options
from cifarlab.cli.studies_cmd import add_run_options, execute, parse_seeds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "seeds",
        run,
        help="train a recipe with seeds 0..n-1",
        description=(
            "Train the same recipe with seeds 0..n-1 (or --seed-list) into a study directory: "
            "one run directory per seed, summary.json/csv/md (mean, std, 95% t interval, min, "
            "max) and figures, among them every seed's curves in one grid. Rerunning the same "
            "command resumes the study."
        ),
    )
    options.add_recipe_option(
        p,
        default="seed-improved",
        help="built-in recipe name or TOML file (default: seed-improved)",
    )
    p.add_argument(
        "-n", "--n", dest="n", type=int, default=10, metavar="N", help="seeds 0..N-1 (default 10)"
    )
    add_run_options(p)


def run(args: argparse.Namespace) -> int:
    from cifarlab.recipe import parse_overrides
    from cifarlab.studies.spec import seed_study

    return execute(
        lambda: seed_study(
            args.recipe,
            parse_seeds(args.n, args.seed_list),
            overrides=parse_overrides(args.overrides),
        ),
        args,
    )
