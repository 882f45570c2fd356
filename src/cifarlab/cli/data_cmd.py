"""`cifarlab data`: find and load a dataset (CIFAR-10 unless --dataset names another), print
what it holds, draw a few figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarlab.cli import options
from cifarlab.cli.common import check_data_dir, check_output_dir
from cifarlab.errors import DataError
from cifarlab.recipe.schema import DATASETS
from cifarlab.recipe.validation import MAX_IMAGE_SIZE, MIN_RESOLUTION


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = options.add_command(
        subparsers,
        "data",
        run,
        help="load a dataset (CIFAR-10 by default) and describe it (counts, shape, figures)",
        description=(
            "Find the dataset (CIFAR-10 unless --dataset names another; downloading it into "
            "the cache if no copy is found), print the images per split and class, and write "
            "example-image and class-count figures."
        ),
    )
    options.add_data_dir(parser)
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default=DATASETS[0],
        help=(
            "which dataset (a recipe's data.dataset): cifar10 (default), cifar100, "
            "cifar100-coarse (its 20 superclasses), or folder (image folders, one per class; "
            "--data-dir names them)"
        ),
    )
    parser.add_argument(
        "--image-size",
        metavar="N",
        type=int,
        default=None,
        help=(
            "--dataset folder: bring the images to N x N pixels, as a recipe's data.image_size "
            "does (default 32); CIFAR's images are 32 x 32 as they are"
        ),
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("runs/data"),
        help="folder for the figures (default: runs/data)",
    )
    options.add_no_figures_option(parser, "print the summary only")
    parser.add_argument(
        "--locate",
        action="store_true",
        help=(
            "print only where the data is (the path --data-dir takes) and exit, reading and "
            "downloading nothing: with no --data-dir, 'sample' when neither $CIFARLAB_DATA nor "
            "the cache holds a copy (scripts/quickstart.sh then uses the bundled sample)"
        ),
    )
    return parser


def _per_class(counts: dict[str, int]) -> str:
    lo, hi = min(counts.values()), max(counts.values())
    return f"{lo:,} per class" if lo == hi else f"{lo:,}–{hi:,} per class"


def _locate(data_dir: str | None) -> int:
    from cifarlab.data.locate import SAMPLE, find_existing

    where = SAMPLE if data_dir == SAMPLE else find_existing(data_dir)
    print(SAMPLE if where is None else where)
    return 0


def run(args: argparse.Namespace) -> int:
    # Imported here so `cifarlab --help` does not pay for numpy.
    from cifarlab.data import load_cifar10
    from cifarlab.data.explore import overview, write_figures

    check_data_dir(args.data_dir)
    dataset = args.dataset
    if args.locate and dataset != "cifar10":
        raise DataError(f"--locate finds CIFAR-10 only, not --dataset {dataset}; drop one of them")
    if dataset == "folder" and args.data_dir in (None, "sample"):
        raise DataError("--dataset folder: name the image folders with --data-dir DIR")
    size = args.image_size
    if size is not None and dataset != "folder":
        raise DataError(f"--image-size is for --dataset folder; {dataset}'s images are 32x32")
    if size is not None and not MIN_RESOLUTION <= size <= MAX_IMAGE_SIZE:
        raise DataError(
            f"--image-size {size}: give a side from {MIN_RESOLUTION} to {MAX_IMAGE_SIZE} pixels"
        )
    if args.locate:
        return _locate(args.data_dir)
    if args.figures:
        check_output_dir(args.out, "--out")  # before the data is read: fail in a second
    if dataset == "cifar10":
        data = load_cifar10(args.data_dir)
    else:
        from cifarlab.data.datasets import DatasetSpec, load_dataset

        data = load_dataset(DatasetSpec(dataset, image_size=size or 32), args.data_dir)
    if dataset != "cifar10":
        print(f"dataset: {data.dataset} ({len(data.classes)} classes)")
    info = overview(data)
    print(f"source: {info['source']}")
    for split in ("train", "test"):
        s = info[split]
        print(f"{split}: {s['images']:,} images, {_per_class(s['per_class'])}")
    h, w, c = info["image_shape"]
    print(f"images: {h}×{w}×{c} {info['dtype']}")
    width = max(len(name) for name in info["classes"])
    print(f"  {'class':<{width}}  {'train':>7}  {'test':>7}")
    for name in info["classes"]:
        train_n, test_n = info["train"]["per_class"][name], info["test"]["per_class"][name]
        print(f"  {name:<{width}}  {train_n:>7,}  {test_n:>7,}")
    if args.figures:
        # A disk that fills now is one line too (cifarlab.atomic.write_atomic), with no partial figure.
        written = write_figures(data, args.out)
        print("figures:")
        for path in written:
            print(f"  {path}")
    return 0
