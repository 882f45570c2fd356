"""`cifarlab train`: run a recipe into a run directory, or resume one."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarlab.cli.common import COMMON, add_data_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        parents=[COMMON],
        help="train a recipe",
        description=(
            "Train a recipe (built-in name or TOML file) into a run directory: checkpoints, history "
            "(CSV, JSON), metrics.json, loss/accuracy curves and the confusion matrix."
        ),
    )
    p.add_argument(
        "--recipe",
        default="seed-baseline",
        metavar="NAME|FILE",
        help="built-in recipe name (see `cifarlab recipes`) or a TOML file (default: seed-baseline)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set optim.lr=7e-4 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (same as --set seed=N)")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run directory (default: runs/<recipe>-seed<N>, numbered if taken)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default=None,
        help="device (same as --set system.device=...)",
    )
    p.add_argument("--epochs", type=float, default=None, help="same as --set train.epochs=N")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files into DIR/tensorboard",
    )
    add_data_dir(p)
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar",
    )
    bar.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="plain lines at evaluation points only",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarlab.train.loop import train
    from cifarlab.train.recipe import load_recipe, parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device is not None:
        overrides["system.device"] = args.device
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    if args.resume:
        train(
            out_dir=args.resume,
            resume=True,
            data_dir=args.data_dir,
            progress=args.progress,
            tensorboard=args.tensorboard,
        )
        return 0
    recipe = load_recipe(args.recipe, overrides)  # fail fast on a bad recipe, before any data I/O
    out = (
        Path(args.out)
        if args.out
        else _fresh_dir(Path("runs") / f"{recipe.name}-seed{recipe.seed}")
    )
    print(f"run directory: {out}")
    train(
        recipe,
        out_dir=out,
        data_dir=args.data_dir,
        progress=args.progress,
        tensorboard=args.tensorboard,
    )
    return 0


def _fresh_dir(base: Path) -> Path:
    """base, or base-2, base-3, ... : never train into a directory that holds a run."""
    if not base.exists():
        return base
    n = 2
    while Path(f"{base}-{n}").exists():
        n += 1
    return Path(f"{base}-{n}")
