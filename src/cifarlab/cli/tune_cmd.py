"""`cifarlab tune`: a hyperparameter search on Optuna, and its confirmation on the test set."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarlab.cli import options
from cifarlab.cli.common import check_data_dir, managed_folder

RECIPE_DEFAULT = "seed-improved"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "tune",
        run,
        help="search a recipe's hyperparameters (Optuna)",
        description=(
            "Search the fields of a recipe that a search space names (TOML: each entry a recipe "
            "field with a distribution). Each trial is a run directory under OUT/trials/, judged "
            "on validation accuracy, never the test set, and pruned at its evaluation points "
            "when it falls behind. The study lives in OUT/study.db (SQLite), or in --storage, "
            "which workers on many machines may share; rerunning the command resumes it. The "
            "best trial's recipe is written to OUT/best.toml; --confirm K then trains it and "
            "the starting recipe with K seeds each and compares their test accuracy (Welch)."
        ),
    )
    options.add_recipe_option(
        p,
        default=RECIPE_DEFAULT,
        help=f"the starting recipe: built-in name or TOML file (default: {RECIPE_DEFAULT})",
    )
    p.add_argument(
        "--space",
        default=None,
        metavar=options.NAME_OR_FILE,
        help="search space: built-in name or TOML file (default: the built-in space named "
        "after the recipe; built-in: seed-improved, fast94)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        metavar="N",
        help="finish N trials in all (complete, pruned or failed with an error), counting those "
        "already finished; a killed trial is retried and counts once (default 20, at most "
        "10000)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start no trial after SECONDS of this command (as Optuna's timeout): trials "
        "running then finish, and the summary says the search stopped on the timeout; "
        "rerunning goes on (default: none)",
    )
    options.add_jobs_option(
        p,
        "worker processes on this machine, each with cpu_count // J torch threads "
        "(default 1); on a GPU one",
    )
    p.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="the study's database, as a SQLAlchemy URL: postgresql://user:pass@host/db (or "
        "mysql://...) to share one study between machines, sqlite:///path/to/study.db; a URL "
        "without a driver uses an installed one, e.g. psycopg2 (default: OUT/study.db)",
    )
    p.add_argument(
        "--study",
        default=None,
        metavar="NAME",
        help="the study's name in the storage (default: from the recipe and space names)",
    )
    p.add_argument(
        "--pruner",
        choices=("median", "hyperband", "none"),
        default="median",
        help="stop poor trials at an evaluation point: median (below the median of complete "
        "trials at the same point of the run), hyperband, or none (default: median)",
    )
    p.add_argument(
        "--prune-startup",
        type=int,
        default=5,
        metavar="N",
        help="median: complete trials before any is pruned (default 5)",
    )
    p.add_argument(
        "--prune-warmup",
        type=float,
        default=0.25,
        metavar="F",
        help="never prune in the first F of a run (default 0.25; hyperband: its smallest budget)",
    )
    p.add_argument(
        "--vary-seed",
        action="store_true",
        help="trial k trains with seed (recipe seed + k); default: every trial the recipe's seed",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        metavar="S",
        help="seconds between a trial's heartbeats in the storage; a trial silent for 2 S is "
        "taken as killed, failed and retried (default 60)",
    )
    p.add_argument(
        "--confirm",
        type=int,
        default=None,
        metavar="K",
        help="after the search, train the best and the starting recipe with K seeds each "
        "(1000..1000+K-1) and compare test accuracy: better only if Welch's 95%% interval of "
        "the difference lies above 0",
    )
    options.add_set_option(
        p,
        "override a field of the starting recipe, in every trial and the confirmation "
        "(e.g. --set train.epochs=5); part of the search's definition",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="tune directory (default: tune-out/<study>); rerunning into it resumes",
    )
    options.add_device_option(p, help="device of every trial (not part of the search's definition)")
    options.add_data_dir(p)


def run(args: argparse.Namespace) -> int:
    from cifarlab import paths
    from cifarlab.recipe import parse_overrides
    from cifarlab.tune import TuneError
    from cifarlab.tune.results import is_tune_dir
    from cifarlab.tune.search import run_tune
    from cifarlab.tune.spec import make_spec

    spec = make_spec(
        args.recipe,
        args.space,
        parse_overrides(args.overrides),
        study=args.study,
        pruner=args.pruner,
        prune_startup=args.prune_startup,
        prune_warmup=args.prune_warmup,
        vary_seed=args.vary_seed,
    )
    if args.confirm is not None and args.confirm < 2:
        raise TuneError(
            f"--confirm {args.confirm}: Welch's interval needs at least 2 seeds per recipe "
            f"(3 or more recommended)"
        )
    out = paths.output_dir(
        args.out or Path("tune-out") / spec.study,
        "--out",
        reuse_if=is_tune_dir,
        managed=managed_folder,  # not inside a run, study or another search
    )
    check_data_dir(args.data_dir)
    print(f"tune directory: {out}")
    summary = run_tune(
        spec,
        out,
        trials=args.trials,
        jobs=args.jobs,
        storage=args.storage,
        heartbeat=args.heartbeat,
        timeout=args.timeout,
        device=args.device,
        data_dir=args.data_dir,
    )
    if args.confirm is not None:
        from cifarlab.tune.confirm import confirm

        result = confirm(
            spec,
            out,
            summary,
            args.confirm,
            jobs=args.jobs,
            device=args.device,
            data_dir=args.data_dir,
        )
        print(result["verdict"])
    return 0
