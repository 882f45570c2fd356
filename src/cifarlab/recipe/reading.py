"""Hardened reading of a user's TOML file (a recipe, a ladder), or of a built-in one.

A user's file must be a regular file of at most MAX_FILE_BYTES, readable and UTF-8; anything
else is refused with one RecipeError line naming the file and what is wrong with it.
"""

from __future__ import annotations

import os
import stat
from importlib import resources
from pathlib import Path

from cifarlab import tomlread
from cifarlab.errors import RecipeError
from cifarlab.recipe.checks import short

# A recipe (or ladder) file is a few kilobytes of settings (the largest built-in, fast94.toml,
# is 3.4 KB); anything over 1 MiB is not one, and is refused before it is read.
MAX_FILE_BYTES = 1 << 20


def read_named_toml(
    name_or_path: str, kind: str, folder: str, builtins: list[str]
) -> tuple[dict, str]:
    """A TOML file, or the built-in ``cifarlab/<folder>/<name>.toml``: (parsed table, where).

    ``kind`` ("recipe", "ladder") words the one-line errors; shared by recipes and ladders.
    A name ending in ``.toml``, holding a path separator, or naming anything on disk is a
    file (``_read_user_file``); but a directory of a built-in's name (a run folder called
    ``fast94``, say) does not hide the built-in.
    """
    path = Path(name_or_path)
    if _names_a_file(path, str(name_or_path), builtins):
        text = _read_user_file(path, kind)
        where = str(path)
    else:
        res = resources.files("cifarlab") / folder / f"{name_or_path}.toml"
        if not res.is_file():
            raise RecipeError(
                f"{kind} {short(name_or_path)}: no such built-in {kind} or file; "
                f"built-in: {', '.join(builtins)}"
            )
        text = res.read_text(encoding="utf-8")
        where = f"{kind} {name_or_path!r}"
    try:
        return tomlread.loads(text), where
    except ValueError as exc:  # TOMLDecodeError, or an integer of over 4,300 digits
        raise RecipeError(f"{where}: not valid TOML ({exc})") from None


def _names_a_file(path: Path, name: str, builtins: list[str]) -> bool:
    if path.suffix == ".toml" or "/" in name or os.sep in name:
        return True
    if not os.path.lexists(path):
        return False
    return not (os.path.isdir(path) and name in builtins)


def _read_user_file(path: Path, kind: str) -> str:
    """The text of a user's TOML file, or one RecipeError line saying what is wrong with it.

    It must be a regular file (a directory, FIFO, device or dangling link is named as such;
    a FIFO is never opened, so nothing blocks), at most MAX_FILE_BYTES (checked before it is
    read), readable, and UTF-8: a byte that is not is refused with its offset, not replaced.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            try:
                target = f" to {short(os.readlink(path))}"
            except OSError:
                target = ""
            raise RecipeError(
                f"{path}: {kind} file is a symbolic link{target}, which does not exist"
            ) from None
        raise RecipeError(f"{path}: {kind} file not found") from None
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{path}: cannot read the {kind} file ({_os_reason(exc)})") from None
    _check_regular(path, info, kind)
    _check_size(path, info.st_size, kind)
    # O_NONBLOCK: should the path become a FIFO between stat and open, open returns at once
    # (fstat below then refuses it); on a regular file the flag changes nothing.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the {kind} file ({_os_reason(exc)})") from None
    try:
        with os.fdopen(fd, "rb") as f:
            _check_regular(path, os.fstat(f.fileno()), kind)  # what was opened, not the path
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the {kind} file ({_os_reason(exc)})") from None
    _check_size(path, len(data), kind, grew=True)  # it may have grown since the stat
    bom = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, as some Windows editors write: UTF-8 still
    skip = len(bom) if data.startswith(bom) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + skip
        raise RecipeError(
            f"{path}: {kind} file is not UTF-8: byte 0x{data[at]:02x} at offset {at} is not "
            f"valid UTF-8 ({exc.reason}); save the file as UTF-8"
        ) from None


def _check_regular(path: Path, info: os.stat_result, kind: str) -> None:
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        what = (
            "a directory"
            if stat.S_ISDIR(mode)
            else "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise RecipeError(f"{path}: is {what}, not a {kind} file; give the path of a .toml file")


def _check_size(path: Path, size: int, kind: str, grew: bool = False) -> None:
    if size > MAX_FILE_BYTES:
        size_text = "grew past the limit" if grew else f"is {size:,} bytes, more than the limit"
        raise RecipeError(
            f"{path}: {kind} file {size_text} of {MAX_FILE_BYTES:,} bytes (1 MiB); "
            f"a {kind} is a few kilobytes of settings"
        )


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if isinstance(exc, PermissionError) else exc.strerror
    return str(exc) or type(exc).__name__
