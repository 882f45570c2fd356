"""Paths the user gives on the command line, checked before any work starts.

Every command checks its path arguments here first, so a mistyped or unwritable ``--out``
fails in a second instead of after an hour of training, with one line that names the path,
says what is wrong and what to do (:class:`~cifarlab.errors.PathError`; the CLI prints it
and exits 2). Cases: missing; the wrong kind (a file where a folder is needed and vice
versa; a FIFO, device or socket, which would block or be clobbered); a broken symbolic
link; permission denied; a read-only file system; a full disk; an output folder that holds
someone else's files (``reuse_if``).

A check cannot see the future (a disk may fill during a run): the writers in
:mod:`cifarlab.atomic` turn such late failures into the same kind of line and leave no
partial file.

Symbolic links. A link the user names is followed, as every Unix tool does: ``runs ->
/scratch/runs`` is a common, deliberate setup. A broken link is refused rather than
followed or replaced: we cannot tell whether its target was meant to be created. A folder
that cifarlab itself picks *inside* another one (``RUN/evaluation/<tta>``, ``RUN/export``)
must stay inside it (``within``): a link there that leads out is refused, so a link
planted in a run directory cannot send our writes somewhere the user never named.

What a command may write over (``reads``, ``managed``, ``owns``). A command never writes
over its own input (``report RUN -o RUN/checkpoint.pt``), nor into a run, study or search
directory that another command owns (``managed(folder)`` names such a folder's kind: the
CLI passes :func:`cifarlab.cli.common.managed_folder`, since which files make a run is
rundir's to say), except the folders the command itself owns there (``owns``: evaluate's
``RUN/evaluation/``, export's ``RUN/export/``). An output file's folder must exist: a
mistyped ``-o /nonexistent/r.html`` is refused, not created at the file-system root.

Nothing here reads a file's contents or writes anything, except ``output_dir(create=True)``,
which makes the folder.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from cifarlab.errors import PathError

# Below this many free bytes not even one figure (24-57 KB) fits: refuse before any work.
# It is no promise that the run's outputs fit (a checkpoint is MBs); a disk that fills later
# is caught by the atomic writers in cifarlab.atomic, which leave no partial file.
MIN_FREE_BYTES = 64 * 1024

# Check with the effective ids, as open() does (os.access defaults to the real ids).
_EFFECTIVE = os.access in os.supports_effective_ids


def input_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` is an existing folder we may list and enter (links followed); else PathError."""
    path = Path(path)
    st = _stat(path, what)
    if not stat.S_ISDIR(st.st_mode):
        raise _error(path, what, f"is {_kind(st.st_mode)}, not a folder", "give a folder")
    _readable(path, what, os.R_OK | os.X_OK)
    return path


def input_path(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` is an existing readable file or folder (a checkpoint or a run, a tarball or a
    data folder); anything else (FIFO, device, socket) is refused: reading it could block."""
    path = Path(path)
    st = _stat(path, what)
    if stat.S_ISDIR(st.st_mode):
        return input_dir(path, what)
    if not stat.S_ISREG(st.st_mode):
        raise _error(
            path, what, f"is {_kind(st.st_mode)}, not a file or folder", "give a file or folder"
        )
    _readable(path, what, os.R_OK)
    return path


# managed(folder): "a run directory", "a study directory", ... or None for any other folder.
Managed = Callable[[Path], "str | None"]
Paths = Iterable["str | os.PathLike[str]"]


def output_dir(
    path: str | os.PathLike[str],
    what: str,
    *,
    reuse_if: Callable[[Path], bool] | None = None,
    within: str | os.PathLike[str] | None = None,
    create: bool = False,
    reads: Paths = (),
    managed: Managed | None = None,
    owns: Paths = (),
) -> Path:
    """``path`` is a folder we can write into, or can be created (with its parents).

    ``reuse_if(path)``: when given, an existing folder that holds anything must satisfy it
    (it holds our own kind of output, e.g. a run), else it is refused: writing there would mix
    our files with someone else's or replace them. ``within``: ``path`` must resolve inside
    this folder (see the module docstring). ``create``: make the folder now. ``reads``,
    ``managed``, ``owns``: see the module docstring; the folder itself may be managed (a run
    to resume), what holds it may not.
    """
    path = Path(path)
    if within is not None:
        _inside(path, Path(within), what)
    _not_over_others(path, what, reads, managed, owns, itself=reuse_if is None)
    place = _nearest_existing(path, what)
    mode = place.stat().st_mode
    if not stat.S_ISDIR(mode):
        if place == path:
            raise _error(path, what, f"is {_kind(mode)}, not a folder", "give a folder path")
        raise _error(
            path,
            what,
            f"cannot be created: {show(place)} is {_kind(mode)}, not a folder",
            "give a folder path",
        )
    _writable(path, place, what)
    if place == path and reuse_if is not None:
        _reusable(path, what, reuse_if)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(path, what, exc) from None
    return path


def output_file(
    path: str | os.PathLike[str],
    what: str,
    *,
    reads: Paths = (),
    managed: Managed | None = None,
    owns: Paths = (),
) -> Path:
    """``path`` is a file we can write (create, or replace atomically) in a folder that
    exists. An existing regular file is replaced; anything else is refused, and so is a file
    the module docstring's rule protects (``reads``, ``managed``, ``owns``)."""
    path = Path(path)
    place = _nearest_existing(path, what)  # refuses a broken link, an unreachable path
    _not_over_others(path, what, reads, managed, owns, itself=False)
    if place == path:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise _error(path, what, f"is {_kind(mode)}, not a file", "give a file name")
        place = _nearest_existing(path.parent, what, shown=path)
    mode = place.stat().st_mode
    if not stat.S_ISDIR(mode):
        raise _error(
            path,
            what,
            f"cannot be created: {show(place)} is {_kind(mode)}, not a folder",
            "give a path in a folder",
        )
    if place != path.parent and place != path:
        missing = next(p for p in reversed(path.parents) if not os.path.lexists(p))
        raise _error(
            path,
            what,
            f"cannot be written: the folder {show(missing)} does not exist",
            "create it first, or check the path",
        )
    _writable(path, place, what)
    return path


def replaceable_folder(
    path: str | os.PathLike[str],
    what: str,
    made_by_us: Callable[[Path], bool],
    *,
    reads: Paths = (),
) -> Path:
    """A folder a command fills and replaces as a whole (a report's figures): new, or one
    ``made_by_us`` says that command made (it leaves a marker file in each). Anything else at
    ``path`` (a user's folder, a run copied there, a file) is refused: replacing it would
    delete what it holds."""
    path = Path(path)
    _not_over_others(path, what, reads, None, (), itself=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return output_dir(path, what)
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    if not stat.S_ISDIR(st.st_mode) or not made_by_us(path):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else _kind(st.st_mode)
        raise _error(
            path,
            what,
            f"is {kind} that cifarlab did not make, and writing would replace it",
            "move it away or choose another output name",
        )
    return output_dir(path, what)


def _not_over_others(
    path: Path, what: str, reads: Paths, managed: Managed | None, owns: Paths, *, itself: bool
) -> None:
    """The rule of the module docstring: not one of ``reads`` nor inside a folder of it, not
    inside a ``managed`` folder (``itself``: nor one itself) unless within ``owns``."""
    real = _resolved(path, what)
    for given in reads:
        source = _resolved(Path(given), what)
        if real == source or source in real.parents:
            raise _error(
                path,
                what,
                f"is {'the command' if real == source else 'inside the command'}'s own input "
                f"{show(given)}, which writing would change",
                "choose an output outside it",
            )
    if managed is None:
        return
    if any(real == o or o in real.parents for o in (_resolved(Path(o), what) for o in owns)):
        return
    for folder in ([real] if itself else []) + list(real.parents):
        kind = managed(folder)
        if kind is not None:
            inside = "is" if folder == real else f"is inside {show(folder)},"
            raise _error(
                path,
                what,
                f"{inside} {kind} that another command owns; writing there could replace its files",
                "choose an output outside it",
            )


def _resolved(path: Path, what: str) -> Path:
    """``path`` absolute, links followed as far as it exists, for comparing places."""
    return Path(os.path.realpath(path))


# --------------------------------------------------------------------------- the checks


def _stat(path: Path, what: str) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        # Which part is missing: a broken link on the way, or the path itself?
        for part in (*reversed(path.parents), path):
            if os.path.islink(part) and not os.path.exists(part):
                raise _broken_link(part, what, shown=path) from None
        raise _error(path, what, "not found", "check the path") from None
    except OSError as exc:
        raise _os_error(path, what, exc) from None


def _readable(path: Path, what: str, mode: int) -> None:
    if not _access(path, mode):
        raise _error(
            path,
            what,
            "cannot be read (permission denied)",
            "fix its permissions or give another path",
        )


def _nearest_existing(path: Path, what: str, shown: Path | None = None) -> Path:
    """``path`` or its nearest ancestor that exists (a relative path ends at '.').

    A broken link on the way is refused; so is an ancestor we may not look into.
    """
    shown = shown or path
    for part in (path, *path.parents):
        try:
            link = stat.S_ISLNK(os.lstat(part).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            continue  # not there (yet), or below a file: the file is found further up
        except OSError as exc:
            raise _os_error(shown, what, exc) from None
        try:
            os.stat(part)
        except FileNotFoundError:
            if link:
                raise _broken_link(part, what, shown=shown) from None
            continue  # removed since the lstat: look further up
        except OSError as exc:  # a link loop, or a link into a place we may not enter
            raise _os_error(shown, what, exc) from None
        return part
    return Path(".")  # pragma: no cover - '.' or '/' always exists


def _writable(path: Path, place: Path, what: str) -> None:
    """New entries can be made in the existing folder ``place`` (``path`` itself, or the
    ancestor it will be created in): not read-only, permitted, not full."""
    here = place == path
    fails = "cannot be written" if here else "cannot be created"
    try:
        fs = os.statvfs(place)
    except OSError:
        fs = None
    if fs is not None and fs.f_flag & os.ST_RDONLY:
        where = "is" if here else f"cannot be created: {show(place)} is"
        raise _error(
            path, what, f"{where} on a read-only file system", "choose a folder on a writable disk"
        )
    if not _access(place, os.W_OK | os.X_OK):
        raise _error(
            path,
            what,
            f"{fails}: permission denied" + ("" if here else f" in {show(place)}"),
            "choose a folder you can write to",
        )
    if fs is None:
        return
    free = fs.f_bavail * fs.f_frsize
    # f_files == 0: a file system without an inode limit (btrfs, some network ones).
    no_inodes = fs.f_files > 0 and fs.f_favail == 0
    if free < MIN_FREE_BYTES or no_inodes:
        left = "no free inodes" if no_inodes else f"{free // 1024} KiB free"
        raise _error(
            path,
            what,
            f"{fails}: the disk is full ({left} in {show(place)})",
            "free disk space or choose a folder on another disk",
        )


def _reusable(path: Path, what: str, reuse_if: Callable[[Path], bool]) -> None:
    try:
        entries = sorted(os.listdir(path))
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    if entries and not reuse_if(path):
        shown = ", ".join(show(e) for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise _error(
            path,
            what,
            f"holds other files ({shown})",
            "choose a new or empty folder, so that nothing in it is mixed up or overwritten",
        )


def _inside(path: Path, root: Path, what: str) -> None:
    try:
        real, real_root = path.resolve(), root.resolve()
    except RuntimeError:  # Python < 3.13 raises this for a link loop
        raise _os_error(path, what, OSError(errno.ELOOP, "link loop")) from None
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    if real != real_root and real_root not in real.parents:
        raise _error(
            path,
            what,
            f"leads out of {show(root)} (to {show(real)}) through a symbolic link",
            "remove the link, or name the folder you mean explicitly",
        )


# --------------------------------------------------------------------------- messages


def _error(path: Path, what: str, problem: str, todo: str) -> PathError:
    return PathError(f"{show(path)}: {what} {problem}; {todo}")


def _broken_link(link: Path, what: str, shown: Path | None = None) -> PathError:
    try:
        target = show(os.readlink(link))
    except OSError:
        target = "?"
    on_way = "" if shown is None or shown == link else f"{show(link)} "
    return _error(
        shown or link,
        what,
        f"{'is' if not on_way else 'goes through'} a broken symbolic link {on_way}"
        f"(to {target}, which does not exist)",
        "create its target or remove the link",
    )


# errno -> (problem, what to do)
_OS_ERRORS = {
    errno.EACCES: ("cannot be used: permission denied", "fix the permissions or give another path"),
    errno.EPERM: ("cannot be used: permission denied", "fix the permissions or give another path"),
    errno.EROFS: ("is on a read-only file system", "choose a folder on a writable disk"),
    # ENOSPC and EDQUOT come only from making the folder (output_dir(create=True)).
    errno.ENOSPC: ("cannot be created: the disk is full", "free disk space or choose another disk"),
    errno.EDQUOT: ("cannot be created: disk quota exceeded", "free space or choose another disk"),
    errno.ENOTDIR: ("goes through a file where a folder is needed", "check the path"),
    errno.EEXIST: ("already exists as something else", "give another path"),
    errno.ELOOP: ("goes through a symbolic link loop", "fix the links"),
    errno.ENAMETOOLONG: ("is too long", "choose a shorter path"),
}


def _os_error(path: Path, what: str, exc: OSError) -> PathError:
    problem, todo = _OS_ERRORS.get(
        exc.errno or 0, (f"cannot be used ({exc.strerror or exc})", "give another path")
    )
    return _error(path, what, problem, todo)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISREG, "a file"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a special file"


def _access(path: Path, mode: int) -> bool:
    return os.access(path, mode, effective_ids=True) if _EFFECTIVE else os.access(path, mode)


def show(path: str | os.PathLike[str]) -> str:
    """The path on one line: control characters (a newline in a name) shown as '?'."""
    return "".join(c if c.isprintable() else "?" for c in os.fspath(path))
