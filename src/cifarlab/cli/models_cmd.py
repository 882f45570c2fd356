"""`cifarlab models`: every registered model with its parameters and forward FLOPs."""

from __future__ import annotations

import argparse
import json

from cifarlab.cli.common import COMMON


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        parents=[COMMON],
        help="list the registered models",
        description="List every registered model with its parameter count and forward FLOPs per image.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cifarlab.models import count_flops, count_parameters, create_model, list_models

    rows = []
    for name in list_models():
        model = create_model(name)
        rows.append(
            {"name": name, "parameters": count_parameters(model), "flops": count_flops(model)}
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<20} {'parameters':>12} {'MFLOPs/image':>14}")
    for r in rows:
        print(f"{r['name']:<20} {r['parameters']:>12,} {r['flops'] / 1e6:>14,.2f}")
    return 0
