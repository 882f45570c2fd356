"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

# Every subcommand takes --debug after its name too (`cifarlab data --debug`). SUPPRESS: a
# subparser's own default would otherwise overwrite `cifarlab --debug data`'s True.
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument(
    "--debug",
    action="store_true",
    default=argparse.SUPPRESS,
    help="show the full traceback for errors",
)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help=(
            "where CIFAR-10 is: a folder holding cifar-10-batches-py/, cifar-10-python.tar.gz "
            "or train/ + test/ image folders (or that form itself), or 'sample' for the bundled "
            "sample. Default: $CIFARLAB_DATA, then the per-user cache, then a download."
        ),
    )
