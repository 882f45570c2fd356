"""Run directories: one lock per directory, provenance, history files."""

from __future__ import annotations

import csv
import fcntl
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from cifarlab.errors import TrainingError

LOCK = ".lock"


class RunLock:
    """An exclusive lock on a run directory, held while a process trains into it.

    flock is released by the kernel when the process dies, so a killed run never
    leaves a stale lock; a second run into the same directory is refused.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            self._fd = None
            raise TrainingError(
                f"{self.path.parent}: another cifarlab run (pid {holder}) is writing here; "
                f"wait for it or choose another --out"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)
        remove_stale_temp_files(self.path.parent)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# The temp files of write-then-rename in a run directory: ".checkpoint.pt.tmp-PID", ...
_TEMP_FILE = re.compile(
    r"^\.(checkpoint\.pt|checkpoint\.prev\.pt|checkpoint\.json|history\.json|history\.csv"
    r"|metrics\.json|recipe\.toml)\.tmp-\d+$"
)


def remove_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete the temp files a killed run left in ``run_dir``; return them.

    Only call this while holding the run's lock: then no live process owns them. They
    are never the only copy of anything (a temp file is renamed only once complete).
    """
    removed = []
    for entry in Path(run_dir).iterdir():
        if _TEMP_FILE.match(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def git_commit() -> str:
    """The commit of the cifarlab source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def provenance(device: Any) -> dict[str, Any]:
    import numpy
    import torch

    from cifarlab import __version__

    return {
        "cifarlab": __version__,
        "git_commit": git_commit(),
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if getattr(device, "type", "") == "cuda"
        else (platform.processor() or platform.machine()),
        "torch_threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }


def write_history_csv(path: str | Path, history: dict[str, list[Any]]) -> None:
    """history.csv, written to a temp file and renamed; a failed write raises TrainingError."""
    keys = list(history)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(keys)
            for row in zip(*(history[k] for k in keys), strict=True):
                writer.writerow(["" if v is None else v for v in row])
        os.replace(tmp, path)
    except OSError as exc:
        raise TrainingError(f"{path}: could not write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Text to a temp file, then rename: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TrainingError(f"{path}: could not write ({exc.strerror or exc})") from None
