"""`cifarlab bench`: images/s per model on this device, or a recipe's time to accuracy."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cifarlab.cli import options
from cifarlab.cli.common import check_data_dir, check_run_out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "bench",
        run,
        help="throughput per model, or time to accuracy of a recipe",
        description=(
            "Without --recipe: training and inference images/s of each registered model on this "
            "device (median of interleaved rounds after warm-up), per precision/layout "
            "configuration. With --recipe NAME --target ACC: train the recipe and report when it "
            "reached the target accuracy."
        ),
    )
    p.add_argument("--models", default=None, metavar="A,B", help="models to time (default: all)")
    p.add_argument(
        "--configs",
        default=None,
        metavar="C,D",
        help="fp32, fp32+cl, bf16, bf16+cl, fp16+cl (default: fp32,fp32+cl on the CPU; "
        "fp32,bf16+cl on CUDA)",
    )
    options.add_device_option(p, default="auto")
    p.add_argument("--batch-size", type=int, default=256, help="training batch (default 256)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per round (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    options.add_recipe_option(p, default=None, help="time-to-accuracy mode")
    p.add_argument(
        "--target", type=float, default=0.94, help="accuracy to reach, a fraction (default 0.94)"
    )
    options.add_seed_option(p, "recipe seed (time-to-accuracy mode)")
    options.add_set_option(p, "override a recipe field (time-to-accuracy mode; repeatable)")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (time-to-accuracy)")
    options.add_json_option(p, "print JSON")
    options.add_data_dir(p)


def run(args: argparse.Namespace) -> int:
    from cifarlab.errors import RecipeError

    for flag in ("batch_size", "steps", "rounds"):
        if getattr(args, flag) <= 0:
            raise RecipeError(f"--{flag.replace('_', '-')}: must be > 0")
    if args.warmup < 0:
        raise RecipeError("--warmup: must be >= 0")
    if args.recipe:
        return _time_to_accuracy(args)
    return _throughput(args)


def _throughput(args: argparse.Namespace) -> int:
    from cifarlab.bench import model_throughput, parse_configs
    from cifarlab.errors import RecipeError
    from cifarlab.models import list_models
    from cifarlab.runtime import resolve_device

    device = resolve_device(args.device)
    configs = parse_configs(args.configs, device)
    names = list_models() if not args.models else [m.strip() for m in args.models.split(",")]
    for name in names:
        if name not in list_models():
            raise RecipeError(f"--models: unknown model {name!r}; see `cifarlab models`")
    rows = []
    for name in names:
        rows.append(
            model_throughput(
                name,
                device,
                configs,
                batch_size=args.batch_size,
                steps=args.steps,
                warmup=args.warmup,
                rounds=args.rounds,
            )
        )
        if not args.json:
            _print_row(rows[-1], configs, header=len(rows) == 1, device=str(device))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def _print_row(row: dict, configs: list[str], header: bool, device: str) -> None:
    if header:
        print(f"device: {device} | batch {row['batch_size']} | images/s (train / inference)")
        print(f"{'model':<18}" + "".join(f"{c:>22}" for c in configs))
    cells = "".join(
        f"{row['configs'][c]['train_img_s']:>10,.0f} /{row['configs'][c]['infer_img_s']:>10,.0f}"
        for c in configs
    )
    print(f"{row['model']:<18}{cells}", flush=True)


def _time_to_accuracy(args: argparse.Namespace) -> int:
    from cifarlab.bench import time_to_accuracy
    from cifarlab.recipe import parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device != "auto":
        overrides["system.device"] = args.device
    out = check_run_out(args.out or _free_dir(Path("runs") / f"bench-{Path(args.recipe).stem}"))
    check_data_dir(args.data_dir)
    # With --json, training's progress lines go to stderr so stdout is one JSON object.
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    result = time_to_accuracy(
        args.recipe, args.target, out_dir=out, overrides=overrides, data_dir=args.data_dir, log=log
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    acc = (
        result["test_accuracy_tta"]
        if result["test_accuracy_tta"] is not None
        else result["test_accuracy"]
    )
    verdict = "reached" if result["reached"] else "NOT reached"
    print(
        f"{result['recipe']} seed {result['seed']}: target {args.target * 100:.2f}% {verdict} | "
        f"test {result['test_accuracy'] * 100:.2f}%"
        + (
            f" ({result['tta']} TTA {acc * 100:.2f}%)"
            if result["test_accuracy_tta"] is not None
            else ""
        )
        + f" | train {result['train_time_s']:.1f} s | wall {result['wall_time_s']:.1f} s"
        + (
            f" | validation reached it at {result['val_time_to_target_s']:.1f} s"
            if result["val_time_to_target_s"] is not None
            else ""
        )
    )
    return 0


def _free_dir(base: Path) -> Path:
    if not base.exists():
        return base
    for i in range(2, 10_000):
        cand = base.with_name(f"{base.name}-{i}")
        if not cand.exists():
            return cand
    raise AssertionError("no free run directory name")
