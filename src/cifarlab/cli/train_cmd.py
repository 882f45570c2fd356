"""`cifarlab train`: run a recipe into a run directory, or resume one.

Data-parallel: ``cifarlab train --nproc N`` starts N processes through torchrun's
launcher (``torchrun --nproc-per-node N -m cifarlab train ...`` works as well);
``--nnodes M --node-rank R --rdzv-endpoint HOST:PORT`` spans several machines.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cifarlab.cli import options
from cifarlab.cli.common import check_data_dir, check_run_out
from cifarlab.errors import CifarlabError, PathError, TrainingError

# Options the launcher consumes; every other option is handed on to the worker processes.
LAUNCHER_DESTS = ("nproc", "nnodes", "node_rank", "rdzv_endpoint")
RECIPE_DEFAULT = "seed-baseline"
QUICK_CHECK_DIR = "quick-check"  # runs/quick-check/<recipe>-seed<N>: default --out of --quick-check


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "train",
        run,
        help="train a recipe",
        description=(
            "Train a recipe (built-in name or TOML file) into a run directory: checkpoints, history "
            "(CSV, JSON), metrics.json, loss/accuracy curves and the confusion matrix."
        ),
    )
    options.add_recipe_option(
        p,
        default=None,
        help="built-in recipe name (see `cifarlab recipes`) or a TOML file (default: seed-baseline)",
    )
    options.add_set_option(p, "override a recipe field, e.g. --set optim.lr=7e-4 (repeatable)")
    options.add_seed_option(p, "random seed, >= 0 (same as --set seed=N)")
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
        help="continue the run in DIR from its last checkpoint, with its own recipe (a finished "
        "run is done; it trains on only to a longer train.epochs, see --allow-change)",
    )
    p.add_argument(
        "--allow-change",
        dest="allow_change",
        action="append",
        default=[],
        metavar="FIELD",
        help="with --resume: let --set (or --epochs, --seed, --device) change FIELD of the run's "
        "recipe, e.g. --allow-change train.epochs --set train.epochs=40 to train longer, a "
        "finished run too (the schedule is recomputed for the new length); the change is recorded in the run (metrics.json recipe_changes). Repeatable",
    )
    options.add_device_option(p, help="device (same as --set system.device=...)")
    p.add_argument("--epochs", type=float, default=None, help="same as --set train.epochs=N")
    p.add_argument(
        "--quick-check",
        action="store_true",
        help=f"run every phase for a few steps (training, an evaluation point, checkpoints, the "
        f"final test, figures) to see that the recipe works end to end, like Lightning's "
        f"fast_dev_run; into runs/{QUICK_CHECK_DIR}/... unless --out, marked as a quick check "
        f"(not a result)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files into DIR/tensorboard",
    )
    options.add_data_dir(p)
    dist = p.add_argument_group(
        "data-parallel (torch.distributed)",
        "Each process takes an equal share of every global batch (train.batch_size); gloo on "
        "the CPU, NCCL on GPUs (one GPU per process). $CIFARLAB_DIST_TIMEOUT (s, default 60) "
        "bounds how long a process waits for the others.",
    )
    dist.add_argument(
        "--nproc",
        type=int,
        default=None,
        metavar="N",
        help="start N training processes on this machine (through torch.distributed.run)",
    )
    dist.add_argument(
        "--nnodes", type=int, default=1, metavar="M", help="machines in the job (default 1)"
    )
    dist.add_argument(
        "--node-rank",
        type=int,
        default=0,
        metavar="R",
        help="this machine's index, 0 to M-1; node 0 hosts the rendezvous and writes the run",
    )
    dist.add_argument(
        "--rdzv-endpoint",
        default=None,
        metavar="HOST:PORT",
        help="multi-node: node 0's address and a free port, the same on every node",
    )
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
    p.set_defaults(train_parser=p)  # _child_argv rebuilds a worker's command line from it


def run(args: argparse.Namespace) -> int:
    from cifarlab.train import distributed

    if args.nproc is not None or args.nnodes != 1 or args.rdzv_endpoint:
        return _launch(args)
    rank = distributed.env_rank()
    try:
        return _train(args, rank)
    except CifarlabError as exc:
        if rank == 0:
            raise
        if getattr(exc, "reported_by_rank0", False):
            return 2  # rank 0 printed this very error
        raise type(exc)(f"rank {rank}: {exc}") from None


def _overrides(args: argparse.Namespace) -> dict:
    from cifarlab.recipe import parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device is not None:
        overrides["system.device"] = args.device
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    return overrides


def _train(args: argparse.Namespace, rank: int) -> int:
    from cifarlab.recipe import load_recipe
    from cifarlab.train.loop import train

    overrides = _overrides(args)
    _check_resume_options(args, overrides)
    if rank == 0:  # only rank 0 writes the run directory
        _check_paths(args)
    recipe = args.recipe or RECIPE_DEFAULT
    if args.resume:  # the run's own recipe, from its checkpoint (train.start.decide_start)
        out = Path(args.resume)
    elif rank != 0:
        # Only rank 0 reads the recipe and writes the run directory (it tells the others);
        # the launcher gave every rank the same --out.
        out = Path(args.out or "runs")
    else:
        # The one resolution of the recipe (it names the run directory): train() trains this
        # Recipe as it is. Before any data I/O, so a bad recipe fails fast.
        recipe, overrides = load_recipe(recipe, overrides), {}  # the overrides are in it
        out = Path(args.out) if args.out else _default_out(recipe, args.quick_check)
        if not args.quick_check:  # a quick check's first line is its own, naming the folder
            print(f"run directory: {out}")
    # Ranks other than 0 neither print nor write: train() turns their progress bar and
    # TensorBoard off.
    train(
        recipe,
        out_dir=out,
        resume=bool(args.resume),
        overrides=overrides,
        allow_change=args.allow_change,
        data_dir=args.data_dir,
        progress=args.progress,
        tensorboard=args.tensorboard,
        quick_check=args.quick_check,
    )
    return 0


def _check_resume_options(args: argparse.Namespace, overrides: dict) -> None:
    """--resume continues a run with its own recipe: --recipe is refused, and so is
    --allow-change without --resume (the loop refuses --set changes it was not allowed)."""
    if args.resume and args.quick_check:
        raise TrainingError(
            f"--quick-check: a quick check is a new run; drop --resume {args.resume}, or drop "
            f"--quick-check to resume"
        )
    if args.resume and args.recipe is not None:
        raise TrainingError(
            f"--recipe: --resume {args.resume} continues with the run's own recipe; drop "
            f"--recipe, or change single fields with --set KEY=VALUE --allow-change KEY"
        )
    if args.allow_change and not args.resume:
        raise TrainingError("--allow-change: only with --resume DIR (a new run takes --set)")
    if args.allow_change and not overrides:
        raise TrainingError("--allow-change: nothing to change; add --set KEY=VALUE")


def _launch(args: argparse.Namespace) -> int:
    """Start ``args.nproc`` workers on this node under torch.distributed.run; wait for them."""
    from cifarlab.recipe import load_recipe
    from cifarlab.train import distributed

    if distributed.launched_by_torchrun():
        raise TrainingError(
            "--nproc/--nnodes: this process was itself started by torchrun; drop those options"
        )
    nproc = args.nproc if args.nproc is not None else 1
    _check_resume_options(args, _overrides(args))
    if args.node_rank == 0:  # fail fast, before any worker starts (node 0 writes the run)
        _check_paths(args)
    if args.resume:
        out = Path(args.resume)
    else:
        recipe = load_recipe(
            args.recipe or RECIPE_DEFAULT, _overrides(args)
        )  # fail fast, before any worker starts
        out = Path(args.out) if args.out else _default_out(recipe, args.quick_check)
    child = ["train", *_child_argv(args)]
    if not args.resume:
        child += ["--out", str(out)]  # every rank gets the same name (only rank 0 writes)
    launch_opts = f" --nproc {nproc}"
    if args.nnodes != 1:
        launch_opts += (
            f" --nnodes {args.nnodes} --node-rank R --rdzv-endpoint {args.rdzv_endpoint} "
            f"(on every node)"
        )
    torchrun_args = distributed.torchrun_args(
        nproc,
        child,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        rdzv_endpoint=args.rdzv_endpoint,
    )
    return distributed.launch(torchrun_args, f"cifarlab train --resume {out}{launch_opts}")


def _child_argv(args: argparse.Namespace) -> list[str]:
    """The worker's command line: every train option the user gave, except the launcher's own
    and --out (set by the launcher). Rebuilt from the parser, so new options pass through."""
    argv: list[str] = []
    for action in args.train_parser._actions:
        if not action.option_strings or action.dest in (*LAUNCHER_DESTS, "out", "help"):
            continue
        value = getattr(args, action.dest, action.default)
        flag = action.option_strings[0]
        if isinstance(action, argparse._AppendAction):
            for item in value or []:
                argv += [flag, str(item)]
        elif action.nargs == 0:  # store_true / store_false / store_const
            if value == action.const and value != action.default:
                argv.append(flag)
        elif value is not None and value != action.default:
            argv += [flag, str(value)]
    return argv


def _check_paths(args: argparse.Namespace) -> None:
    """--resume, --out and --data-dir, before the recipe, the data or a worker is touched."""
    from cifarlab import paths

    if args.resume:
        if os.path.isfile(args.resume):  # os.path: never raises (e.g. permission denied)
            raise PathError(
                f"{paths.show(args.resume)}: --resume takes the run's folder, not a file; "
                f"use --resume {paths.show(Path(args.resume).parent)}"
            )
        paths.input_dir(args.resume, "--resume")
        paths.output_dir(args.resume, "--resume")  # resuming writes into it
    elif args.out:
        check_run_out(args.out)
    check_data_dir(args.data_dir)


def _default_out(recipe, quick_check: bool = False) -> Path:
    """runs/<recipe>-seed<N> (numbered if taken), checked like --out; a quick check's in
    runs/quick-check/, apart from the runs that are results."""
    base = Path("runs", QUICK_CHECK_DIR) if quick_check else Path("runs")
    return check_run_out(_fresh_dir(base / f"{recipe.name}-seed{recipe.seed}"))


def _fresh_dir(base: Path) -> Path:
    """base, or base-2, base-3, ... : never train into a directory that holds a run."""
    if not base.exists():
        return base
    n = 2
    while Path(f"{base}-{n}").exists():
        n += 1
    return Path(f"{base}-{n}")
