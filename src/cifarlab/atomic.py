"""Files cifarlab writes, written atomically, and JSON read back.

Every file cifarlab writes (a run's files, the data cache, a report, an export, a search's
summary) goes through :func:`write_atomic`: a temp file ``.NAME.tmp-PID`` in the same
directory, fsynced, then renamed over NAME. rename(2) replaces whatever is at NAME, a symlink
included, without following it, so a planted link never redirects a write; any failure
removes the temp file and raises one line naming the file. Which files exist where is the
business of the directories' owners (:mod:`cifarlab.rundir` for a run); this module knows
nothing of them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cifarlab.errors import CifarlabError, OutputError
from cifarlab.stored import StoredValueError, json_text


def temp_path(path: Path) -> Path:
    """The temp file a write of ``path`` goes through: ``.NAME.tmp-PID`` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


# The temp files of write_atomic: ".NAME.tmp-PID".
_TEMP_FILE = re.compile(r"^\..+\.tmp-\d+$")


def is_temp_file(name: str) -> bool:
    """Whether ``name`` is a temp file of :func:`write_atomic` (``.NAME.tmp-PID``)."""
    return _TEMP_FILE.match(name) is not None


def _exclusive(path: str, flags: int) -> int:
    # O_EXCL | O_NOFOLLOW: the temp file is new and ours, never an existing file or a link.
    return os.open(path, flags | os.O_EXCL | os.O_NOFOLLOW, 0o666)


def write_atomic(
    path: str | Path,
    content: bytes | str | Callable[[IO[bytes]], Any],
    *,
    error: type[CifarlabError] = OutputError,
    hint: str = "free disk space, or choose another output path",
    before_replace: Callable[[], None] | None = None,
) -> Path:
    """Write ``content`` (bytes, text, or a function that writes to a binary file) to ``path``.

    Temp file in the same directory, fsync, ``before_replace()`` (the checkpoint rotation),
    rename, fsync of the directory. Any failure, an interrupt included, removes the temp file
    and leaves ``path`` as it was; an I/O failure raises ``error`` with one line naming
    ``path``, the reason and ``hint``.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        tmp.unlink(missing_ok=True)  # a leftover of a dead process that had our pid
        with open(tmp, "wb", opener=_exclusive) as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # torch.save and matplotlib wrap the writer's OSError (ENOSPC, EIO) in other errors.
        os_error = os_error_in(exc)
        if os_error is None:
            raise  # not an I/O failure: a bug, keep the traceback
        raise error(f"{path}: could not write ({reason(os_error)}); {hint}") from None
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str, **kwargs: Any) -> Path:
    return write_atomic(path, text, **kwargs)


def write_json(path: str | Path, obj: Any, **kwargs: Any) -> Path:
    """``obj`` as strict JSON (cifarlab.stored.json_text): a NaN or an infinity in it is
    refused with one line, ``path`` untouched, rather than written as the invalid ``NaN``."""
    try:
        text = json_text(obj)
    except StoredValueError as exc:
        error = kwargs.get("error", OutputError)
        raise error(f"{path}: not written: {exc}") from None
    return write_atomic(path, text + "\n", **kwargs)


def write_csv(path: str | Path, header: list[str], rows: list[list[Any]], **kwargs: Any) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return write_atomic(path, buf.getvalue(), **kwargs)


def reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (itself, or in its cause/context chain), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files a killed process left in ``folder``; return them.

    Only call this while holding the folder's lock (a run's: cifarlab.rundir.RunLock): then
    no live process owns them. They are never the only copy of anything (a temp file is
    renamed only once complete).
    """
    removed = []
    for entry in Path(folder).iterdir():
        if is_temp_file(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def read_json(path: Path, error: type[CifarlabError] = OutputError) -> Any:
    """A JSON file, None when missing; a damaged one raises ``error`` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read ({exc}); fix or remove the file") from None
