"""`cifarlab ablate`: run an ablation ladder (cumulative or leave-one-out) over seeds."""

from __future__ import annotations

import argparse

from cifarlab.cli import options
from cifarlab.cli.studies_cmd import add_run_options, execute, parse_seeds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "ablate",
        run,
        help="run an ablation ladder over seeds",
        description=(
            "Run a ladder (an ordered list of named recipe changes) cumulatively: step k applies "
            "the changes of steps 1..k, each step with every seed. --leave-one-out instead runs "
            "the final recipe and the final recipe without each step's changes. Writes a study "
            "directory: one run directory per (step, seed), summary.json/csv/md (mean, std, "
            "95% t interval, min, max, difference from the previous step with Welch's "
            "interval) and figures. Rerunning the same command resumes the study."
        ),
    )
    p.add_argument(
        "--ladder",
        default="seed-report",
        metavar=options.NAME_OR_FILE,
        help="built-in ladder (see `cifarlab studies ladders`) or a TOML file "
        "(default: seed-report)",
    )
    p.add_argument(
        "--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per step (default 3)"
    )
    p.add_argument(
        "--leave-one-out",
        action="store_true",
        help="remove each change from the final recipe instead of adding them one by one",
    )
    add_run_options(p)


def run(args: argparse.Namespace) -> int:
    from cifarlab.recipe import parse_overrides
    from cifarlab.studies.ladder import load_ladder
    from cifarlab.studies.spec import ablation_study

    return execute(
        lambda: ablation_study(
            load_ladder(args.ladder),
            parse_seeds(args.seeds, args.seed_list),
            leave_one_out=args.leave_one_out,
            overrides=parse_overrides(args.overrides),
        ),
        args,
    )
