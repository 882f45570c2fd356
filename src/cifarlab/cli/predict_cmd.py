"""`cifarlab predict`: classify your own pictures with a trained checkpoint."""

from __future__ import annotations

import argparse
import sys

from cifarlab.cli import options
from cifarlab.errors import warn


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "predict",
        run,
        help="classify your own pictures",
        description=(
            "Classify pictures of any size with a trained checkpoint. Accepted: PNG, JPEG, WebP, "
            "GIF (first frame), BMP and TIFF files named .png .jpg .jpeg .jfif .webp .gif .bmp "
            ".tif .tiff (any case), named directly or found in folders. Any mode and bit depth "
            "is read: 16-bit and 32-bit grey is scaled by its full range (65535 is white), "
            "transparency is shown on white, CMYK and palettes are converted to RGB. A picture "
            "whose header declares more than 70 megapixels is refused before it is decoded "
            "(decoding one takes at most about 1.1 GB). Each picture is turned upright from its "
            "EXIF orientation, centre-cropped to a square and resized to 32×32 (bilinear); "
            "pictures smaller than 8×8 are refused. A file that cannot be read (missing, not a "
            "regular file, damaged, too large, too small) gets its own error line and the others "
            "are still predicted. Probabilities use the temperature that `cifarlab evaluate "
            "--calibrate` stored beside the checkpoint (temperature.json), when it was fitted "
            "for this checkpoint's step (said on the first line; one fitted for another step is "
            "ignored with a warning). Exit status: 0 all predicted, 1 some failed, 2 none could "
            "be predicted."
        ),
    )
    options.add_checkpoint_argument(p)
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="picture files, or folders searched (recursively) for picture files",
    )
    p.add_argument(
        "--top-k",
        "-k",
        type=int,
        default=3,
        metavar="K",
        help="how many classes to show per picture (default: 3; more than the model's classes "
        "shows them all)",
    )
    options.add_json_option(p, "print the predictions as JSON")
    options.add_device_option(p, default="cpu")


def run(args: argparse.Namespace) -> int:
    from cifarlab import paths
    from cifarlab.errors import CifarlabError
    from cifarlab.predict import load_trained_model, predict_paths
    from cifarlab.stored import json_text

    if args.top_k < 1:
        raise CifarlabError(f"--top-k: must be at least 1, got {args.top_k}")
    paths.input_path(args.checkpoint, "checkpoint")  # the pictures are checked one by one
    trained = load_trained_model(args.checkpoint, device=args.device)
    if trained.temperature is None and trained.temperature_note:  # a stale temperature
        warn(trained.temperature_note)
    results, errors = predict_paths(trained, args.paths, top_k=args.top_k)
    for err in errors:
        print(f"cifarlab: error: {err['error']}", file=sys.stderr)
    if args.json:
        print(
            json_text(
                {
                    "checkpoint": str(args.checkpoint),
                    "model": trained.model_name,
                    "preprocessing": "centre crop to square, resize to 32x32 (PIL bilinear)",
                    "temperature": trained.temperature,
                    "temperature_note": trained.temperature_note,
                    "predictions": results,
                    "errors": errors,
                },
            )
        )
    elif results:
        if trained.temperature is not None:
            print(trained.temperature_note)
        _print_table(results)
    if errors and not results:
        return 2
    return 1 if errors else 0


def _print_table(results: list[dict]) -> None:
    """One line per picture: its top-k classes with their probabilities, in columns as wide
    as their longest cell (at least 22: CIFAR-10's names), so CIFAR-100's longer names
    (``large_man-made_outdoor_things 12.3%``) stay aligned."""
    k = max(len(r["top"]) for r in results)
    width = min(max(len(r["file"]) for r in results), 60)
    rows = [[f"{t['class']} {t['probability'] * 100:5.1f}%" for t in r["top"]] for r in results]
    cell = max([22, *(len(c) for cells in rows for c in cells)])
    head = f"{'file':<{width}}  " + "  ".join(f"{f'top-{i + 1}':<{cell}}" for i in range(k))
    print(head.rstrip())
    for r, cells in zip(results, rows, strict=True):
        name = r["file"] if len(r["file"]) <= width else "…" + r["file"][-(width - 1) :]
        print((f"{name:<{width}}  " + "  ".join(f"{c:<{cell}}" for c in cells)).rstrip())
