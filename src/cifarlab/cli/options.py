"""The options several `cifarlab` commands take, each declared once.

A command module registers itself with :func:`add_command` and adds the shared options it
takes with the ``add_*`` helpers here: the flag, its type, metavar and choices live only in
this module, while the help line (what the option means in that command), and the default
where commands differ, are the command's. Choices are the library's own tuples
(``recipe.DEVICES`` here; an option of one command takes its choices from the library the
same way, e.g. ``export.FORMATS``), so a new device reaches every command at once. Nothing
imported here imports torch: `cifarlab --help` stays quick.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from cifarlab.recipe import DEVICES

NAME_OR_FILE = "NAME|FILE"  # a built-in (recipe, ladder, space) by name, or a TOML file

# Every subcommand takes --debug after its name too (`cifarlab data --debug`). SUPPRESS: a
# subparser's own default would otherwise overwrite `cifarlab --debug data`'s True.
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument(
    "--debug",
    action="store_true",
    default=argparse.SUPPRESS,
    help="show the full traceback for errors",
)

DATA_DIR_HELP = (
    "where the dataset is (CIFAR-10 unless the recipe's data.dataset names another; a "
    "run's own for a finished run): for CIFAR-10 a folder holding cifar-10-batches-py/, "
    "cifar-10-python.tar.gz or train/ + test/ image folders (or that form itself), or "
    "'sample' for the bundled sample. Default: $CIFARLAB_DATA, then the per-user cache, "
    "then a download."
)


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int] | None,
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """Register subcommand ``name`` (or a nested action, e.g. ``studies merge``) with the
    options every command takes (:data:`COMMON`); ``run(args)`` is what it does."""
    parser = sub.add_parser(name, parents=[COMMON], help=help, description=description)
    if run is not None:
        parser.set_defaults(func=run)
    return parser


def add_data_dir(parser: argparse.ArgumentParser, help: str = DATA_DIR_HELP) -> None:
    """--data-dir DIR: where CIFAR-10 is (checked by ``common.check_data_dir``)."""
    parser.add_argument("--data-dir", metavar="DIR", default=None, help=help)


def add_recipe_option(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """--recipe NAME|FILE: a built-in recipe or a TOML file."""
    parser.add_argument("--recipe", default=default, metavar=NAME_OR_FILE, help=help)


def add_name_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The optional positional NAME|FILE of the listing commands (recipes, ladders): without
    it they list the built-ins, with it they show that one."""
    parser.add_argument("name", nargs="?", metavar=NAME_OR_FILE, help=help)


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """--set KEY=VALUE (repeatable) into ``args.overrides``, a list for
    ``recipe.parse_overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def seed_value(text: str) -> int:
    """--seed: an integer >= 0 (a recipe's seed; torch and numpy take no negative seeds)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {seed}")
    return seed


def add_seed_option(parser: argparse.ArgumentParser, help: str) -> None:
    """--seed N: the recipe's seed (None: the recipe's own)."""
    parser.add_argument("--seed", type=seed_value, default=None, help=help)


def add_device_option(
    parser: argparse.ArgumentParser, *, default: str | None = None, help: str | None = None
) -> None:
    """--device, one of the recipe's devices; ``default`` None leaves the recipe's own."""
    parser.add_argument("--device", choices=DEVICES, default=default, help=help)


def add_jobs_option(parser: argparse.ArgumentParser, help: str) -> None:
    """--jobs/-j J: worker processes at a time (default 1)."""
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="J", help=help)


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """The positional CHECKPOINT of the commands that read a trained model."""
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a checkpoint.pt or a run directory"
    )


def add_json_option(parser: argparse.ArgumentParser, help: str) -> None:
    """--json: print the result as JSON instead of lines for people."""
    parser.add_argument("--json", action="store_true", help=help)


def add_no_figures_option(parser: argparse.ArgumentParser, help: str) -> None:
    """--no-figures: ``args.figures`` False (write or print the rest only)."""
    parser.add_argument("--no-figures", dest="figures", action="store_false", help=help)
