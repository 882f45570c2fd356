"""`cifarlab models`: every registered model with its parameters and forward FLOPs."""

from __future__ import annotations

import argparse
import json

from cifarlab.cli import options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "models",
        run,
        help="list the registered models",
        description="List every registered model with its parameter count and forward FLOPs per image.",
    )
    options.add_json_option(p, "print JSON instead of a table")


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
