"""The run directory: its file names, the one atomic writer, the run lock, and its reader.

Everything that writes or reads a file of a run goes through here (STYLE.md: one owner per
concern). A run directory holds::

    recipe.toml            the resolved recipe (written at the start and at the end)
    checkpoint.pt          the last complete checkpoint (+ checkpoint.prev.pt, checkpoint.json)
    history.json/.csv      the evaluation points (step, lr, train/val loss and accuracy, time)
    metrics.json           the final metrics: its presence means the run finished
    loss.png, accuracy.png, confusion.png
    evaluation/<tta>/      what ``cifarlab evaluate`` writes (evaluation.json, confusion.png,
                           reliability.png; corruptions.json/.png), for the latest checkpoint
    evaluation/step-<N>/<tta>/  the same for an older checkpoint (checkpoint.prev.pt) at step N
    temperature.json       ``cifarlab evaluate --calibrate``: the temperature fitted on the
                           validation split for the checkpoint beside it (used by predict, export)
    .lock                  held (flock) while a process trains here; removed when it ends

Writes are atomic: a temp file ``.NAME.tmp-PID`` in the same directory, fsynced, then
renamed over NAME. rename(2) replaces whatever is at NAME, a symlink included, without
following it, so a planted link never redirects a write; any failure removes the temp file
and raises one line naming the file. Checkpoints are complete (model, optimizer, step, RNG
states, history, recipe, ...) and loaded with ``torch.load(weights_only=True)`` after their
zip CRCs are verified, so a damaged or hostile file is refused before torch reads it. A
checkpoint's ``"model"`` is the state dict the run is evaluated with, which evaluate, predict
and export load: the weights' moving average when the recipe sets ``train.ema``, whose
checkpoints also hold the optimizer's own weights as ``"train_model"`` (train/ema.py).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import pickle
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cifarlab.errors import CheckpointError, CifarlabError, OutputError, TrainingError
from cifarlab.stored import StoredValueError, field, json_text, mapping
from cifarlab.version import __version__

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# --------------------------------------------------------------------------- file names

RECIPE = "recipe.toml"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
BEST = "checkpoint.best.pt"  # train.keep_best: the best validation accuracy's checkpoint
SUMMARY = "checkpoint.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
METRICS = "metrics.json"
LOSS_FIGURE = "loss.png"
ACCURACY_FIGURE = "accuracy.png"
CONFUSION_FIGURE = "confusion.png"
RELIABILITY_FIGURE = "reliability.png"  # evaluate's reliability diagram (cifarlab.calibration)
TEMPERATURE = "temperature.json"  # beside the checkpoint: evaluate --calibrate's temperature
EVALUATION_DIR = "evaluation"  # evaluation/<tta>/ : cifarlab evaluate's outputs
OLDER_STEP_PREFIX = "step-"  # evaluation/step-<N>/<tta>/, export/step-<N>/: an older checkpoint's
EXPORT_DIR = "export"  # export/ : cifarlab export's default folder
EVALUATION = "evaluation.json"
CORRUPTIONS_JSON = "corruptions.json"  # evaluation/<tta>/: evaluate --corruptions
CORRUPTIONS_FIGURE = "corruptions.png"
TENSORBOARD_DIR = "tensorboard"
TRAIN_LOG = "train.log"
LOCK = ".lock"
RUN_FIGURES = (LOSS_FIGURE, ACCURACY_FIGURE, CONFUSION_FIGURE)

FORMAT = "cifarlab-checkpoint"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- atomic writes


def temp_path(path: Path) -> Path:
    """The temp file a write of ``path`` goes through: ``.NAME.tmp-PID`` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


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


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """A matplotlib figure as PNG, atomically (savefig itself writes in place)."""
    return write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100), **kwargs)


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


# The temp files of write_atomic: ".NAME.tmp-PID".
_TEMP_FILE = re.compile(r"^\..+\.tmp-\d+$")


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


# --------------------------------------------------------------------------- the run lock


class RunLock:
    """An exclusive lock on a run directory, held while a process trains into it.

    flock is released by the kernel when the process dies, so a killed run never blocks the
    next one (its stale ``.lock`` is reused); a process that ends normally removes ``.lock``.
    It unlinks while still holding the lock, and whoever locks checks afterwards that the
    file it locked is still the one at ``.lock`` (else it retries), so removal never lets two
    processes in. A second run into the same directory is refused.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        for _ in range(100):
            try:  # O_NOFOLLOW: a symlink planted at .lock is refused, never followed
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                why = "a symlink" if exc.errno == errno.ELOOP else reason(exc)
                raise TrainingError(
                    f"{self.path}: cannot take the run lock ({why}); remove it or choose "
                    f"another --out"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise TrainingError(
                    f"{self.path.parent}: another cifarlab run (pid {holder}) is writing here; "
                    f"wait for it or choose another --out"
                ) from None
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed it between our open and our lock: again
        else:  # pragma: no cover - a pathological race
            raise TrainingError(f"{self.path}: could not take the run lock; try again")
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        remove_stale_temp_files(self.path.parent)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only directory now: the stale lock is harmless (flock is gone)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# --------------------------------------------------------------------------- checkpoints


def versions() -> dict[str, str]:
    import torch

    return {"cifarlab": __version__, "torch": str(torch.__version__)}


def save_checkpoint(run_dir: str | Path, payload: dict[str, Any], summary: dict[str, Any]) -> Path:
    """Write ``payload`` atomically as run_dir/checkpoint.pt and ``summary`` as checkpoint.json.

    Order: the new checkpoint goes to a temp file (fsynced); the current checkpoint.pt
    is hard-linked to checkpoint.prev.pt; the temp file is renamed over checkpoint.pt.
    A crash at any moment leaves a complete checkpoint.pt (once one was written), and a
    failed write (disk full, I/O error) raises CheckpointError and leaves no temp file.
    """
    import torch  # here, not at the top: figures and JSON are written without torch

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        **payload,
    }

    def rotate() -> None:
        if path.exists() and _looks_complete(path):
            _keep_previous(path, run_dir / PREVIOUS)

    kept = (
        "the previous checkpoint is kept"
        if (path.exists() or (run_dir / PREVIOUS).exists())
        else "no checkpoint was written yet"
    )
    write_atomic(
        path,
        lambda f: torch.save(payload, f),
        error=CheckpointError,
        hint=f"{kept}. Free disk space or choose another --out",
        before_replace=rotate,
    )
    write_json(
        run_dir / SUMMARY,
        {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **summary},
        error=CheckpointError,
    )
    return path


def save_best_checkpoint(run_dir: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically as run_dir/checkpoint.best.pt (``train.keep_best``): a
    checkpoint as complete as checkpoint.pt, without rotation or summary."""
    import torch

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        **payload,
    }
    return write_atomic(
        Path(run_dir) / BEST,
        lambda f: torch.save(payload, f),
        error=CheckpointError,
        hint="checkpoint.pt is not affected. Free disk space or choose another --out",
    )


def _looks_complete(path: Path) -> bool:
    """True when ``path`` is a complete archive whose checksums match (read back, no unpickling).

    Only such a checkpoint.pt becomes checkpoint.prev.pt: a damaged one (truncated, empty,
    bit-flipped) is never rotated over the good checkpoint.prev.pt a resume started from.
    """
    try:
        _verify_archive(path)
    except CheckpointError:
        return False
    return True


def _keep_previous(path: Path, previous: Path) -> None:
    """Make ``previous`` a copy of ``path`` while ``path`` stays in place.

    A hard link plus a rename: checkpoint.pt never disappears, even for a moment, so a
    crash between here and the final rename still leaves it loadable.
    """
    link = temp_path(previous)
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)
    except OSError as exc:
        if exc.errno not in (
            errno.EPERM,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
            errno.EXDEV,
            errno.EMLINK,
        ):
            raise
        # No hard links on this filesystem: fall back to moving the old checkpoint aside.
        os.replace(path, previous)
        return
    try:
        os.replace(link, previous)
    finally:
        link.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a cifarlab checkpoint safely; a run directory means its checkpoint.pt.

    Damaged, empty, truncated, bit-flipped or foreign files raise CheckpointError naming
    the file: the archive's CRC32 checksums are verified before torch reads it (torch.load
    itself does not check them, so a flipped bit in a tensor would load silently), and
    ``weights_only=True`` refuses any object other than tensors and plain data.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path}: checkpoint is empty (0 bytes); use checkpoint.prev.pt or retrain"
        )
    _verify_archive(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (
            _printable(str(exc).strip().splitlines()[0])
            if str(exc).strip()
            else "unpickling failed"
        )
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused: the file carries Python objects other than tensors and plain "
                f"data ({_global_name(str(exc))}); only load checkpoints you trust with other tools"
            ) from None
        raise CheckpointError(f"{path}: damaged checkpoint ({first[:200]})") from None
    except MemoryError:
        raise
    except Exception as exc:  # a damaged archive can make torch raise almost anything
        first = (
            _printable(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
        )
        raise CheckpointError(f"{path}: damaged or truncated checkpoint ({first[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cifarlab checkpoint (no '{FORMAT}' format tag)")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version!r} is newer than this cifarlab "
            f"({FORMAT_VERSION}); upgrade cifarlab"
        )
    _check_payload(path, payload)
    return payload


def _verify_archive(path: Path) -> None:
    """Refuse anything but a complete zip archive whose every member matches its CRC32."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except MemoryError:
        raise
    except Exception as exc:  # BadZipFile, EOFError, struct/zlib errors, bad names, ...
        reason = _printable(str(exc))[:160] or type(exc).__name__
        raise CheckpointError(
            f"{path}: damaged or truncated checkpoint (not a complete torch archive: {reason}); "
            f"use checkpoint.prev.pt or retrain"
        ) from None
    if bad is not None:
        raise CheckpointError(
            f"{path}: damaged checkpoint (checksum mismatch in {_printable(bad)}); "
            f"use checkpoint.prev.pt or retrain"
        )


def _printable(text: str) -> str:
    """``text`` on one line, with control characters (e.g. from a damaged name) as '?'."""
    return " ".join("".join(c if c.isprintable() else "?" for c in text).split())


def _check_payload(path: Path, payload: dict[str, Any]) -> None:
    """The entries a resume or an evaluation uses have the right types, or CheckpointError."""
    import torch

    for key in ("model", "recipe", "step"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    for key in ("model", "train_model"):
        model = payload.get(key, {})
        if not isinstance(model, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
        ):
            raise CheckpointError(f"{path}: '{key}' is not a state dict of tensors; not loadable")
    step = payload["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: 'step' is {step!r}, not a step count; not loadable")
    for key, kind in (("recipe", dict), ("optimizer", dict), ("history", dict), ("rng", dict)):
        if key in payload and not isinstance(payload[key], kind):
            raise CheckpointError(
                f"{path}: '{key}' is a {type(payload[key]).__name__}, not a {kind.__name__}"
            )


def _global_name(message: str) -> str:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return line.strip().split(":", 1)[-1].strip()[:120]
    return "unsupported global"


def latest_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest loadable checkpoint in a run directory (checkpoint.pt, else checkpoint.prev.pt).

    Returns None when the folder holds neither; raises CheckpointError when both are damaged.
    """
    run_dir = Path(run_dir)
    errors = []
    for name in (CHECKPOINT, PREVIOUS):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            errors.append(str(exc))
    if errors:
        raise CheckpointError("; ".join(errors))
    return None


# --------------------------------------------------------------------------- reading a run


class RunDir:
    """A run directory as its readers see it: evaluate, predict, export, studies, report.

    Missing files read as None; a file that exists but cannot be read raises ``error`` with
    one line naming it.
    """

    def __init__(self, path: str | Path, error: type[CifarlabError] = OutputError) -> None:
        self.path = Path(path)
        self.error = error

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def is_run(self) -> bool:
        """Holds a run's files (finished or not)."""
        return any((self.path / n).is_file() for n in (METRICS, HISTORY_JSON, CHECKPOINT, PREVIOUS))

    def is_finished(self) -> bool:
        return (self.path / METRICS).is_file()

    def has_checkpoint(self) -> bool:
        return any((self.path / n).exists() for n in (CHECKPOINT, PREVIOUS))

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name, self.error)

    def metrics(self) -> dict[str, Any] | None:
        """metrics.json, its numbers checked (:func:`check_metrics`); None before the end."""
        metrics = self.read_json(METRICS)
        return None if metrics is None else check_metrics(metrics, self.path / METRICS)

    def history(self) -> dict[str, list[Any]] | None:
        return self.read_json(HISTORY_JSON)

    def recipe(self) -> dict[str, Any] | None:
        """The resolved recipe as a dict (recipe.toml), or None before the first write."""
        path = self.path / RECIPE
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise self.error(f"{path}: cannot read the recipe ({exc})") from None

    def latest_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        return latest_checkpoint(self.path)

    def evaluation_dir(self, tta: str, step: int | None = None) -> Path:
        """Where ``cifarlab evaluate --tta TTA`` writes: beside the training's files. ``step``:
        the evaluation of a checkpoint other than the latest (checkpoint.prev.pt), in a folder
        of its own, so it never replaces the latest's (which the report reads)."""
        if step is None:
            return self.path / EVALUATION_DIR / tta
        return self.path / EVALUATION_DIR / f"{OLDER_STEP_PREFIX}{step}" / tta

    def export_dir(self, step: int | None = None) -> Path:
        """Where ``cifarlab export`` writes by default; ``step``: the export of a checkpoint
        other than the latest, in a folder of its own, never over the latest's."""
        if step is None:
            return self.path / EXPORT_DIR
        return self.path / EXPORT_DIR / f"{OLDER_STEP_PREFIX}{step}"


def older_checkpoint_step(ckpt: Path) -> int | None:
    """The step of ``ckpt`` when it is a run's checkpoint other than its latest
    (checkpoint.prev.pt, checkpoint.best.pt): what it writes by default goes to a step-<N>
    folder of its own. None for the latest (a run directory or its checkpoint.pt), or a
    checkpoint file outside a run."""
    if ckpt.is_dir() or ckpt.name == CHECKPOINT or not RunDir(ckpt.parent).is_run():
        return None
    return int(load_checkpoint(ckpt)["step"])


def check_metrics(metrics: Any, path: Path) -> dict[str, Any]:
    """A metrics.json's numbers: fractions in [0, 1], losses >= 0, the Brier score in [0, 2]
    (cifarlab.calibration), counts whole; else StoredValueError naming the file and field."""
    metrics = mapping(metrics, path)
    for key in ("test_accuracy", "val_accuracy", "test_accuracy_tta", "test_ece", "val_ece"):
        field(metrics, key, path, low=0.0, high=1.0)
    for key in ("test_loss", "test_nll", "val_nll", "val_loss"):
        field(metrics, key, path, low=0.0)
    for key in ("test_brier", "val_brier"):
        field(metrics, key, path, low=0.0, high=2.0)
    field(metrics, "test_count", path, low=0, integer=True)
    return metrics


def read_json(path: Path, error: type[CifarlabError] = OutputError) -> Any:
    """A JSON file, None when missing; a damaged one raises ``error`` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read ({exc}); fix or remove the file") from None
