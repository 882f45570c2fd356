"""The run directory, this module's one concern: its layout, lock, checkpoints and reader.

:class:`RunDir` is the only code that names a path inside a run directory; every other
module asks it for one (``run.metrics_path``, ``run.evaluation_dir(tta)``, ...), and each
evaluation folder inside it is an :class:`EvaluationDir`. A run directory holds::

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

Every file is written through :mod:`cifarlab.atomic` (temp file, fsync, rename). Checkpoints
are complete (model, optimizer, step, RNG states, history, recipe, ...) and loaded with
``torch.load(weights_only=True)`` after their zip CRCs are verified, so a damaged or hostile
file is refused before torch reads it. A checkpoint's ``"model"`` is the state dict the run
is evaluated with, which evaluate, predict and export load: the weights' moving average when
the recipe sets ``train.ema``, whose checkpoints also hold the optimizer's own weights as
``"train_model"`` (train/ema.py).
"""

from __future__ import annotations

import errno
import fcntl
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from cifarlab import tomlread
from cifarlab.atomic import (
    is_temp_file,
    read_json,
    reason,
    remove_stale_temp_files,
    temp_path,
    write_atomic,
    write_json,
)
from cifarlab.errors import CheckpointError, CifarlabError, OutputError, TrainingError
from cifarlab.stored import field, mapping
from cifarlab.version import __version__

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
# 2: the recipe inside is in today's fields, read as it is. 1 (every checkpoint before issue
# 30): its recipe may predate the optimiser policy's move to [optim]; cifarlab.recipe.migrate
# brings it to version 2. A newer version than this is refused (load_checkpoint).
FORMAT_VERSION = 2


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
        path = RunDir(path).checkpoint_path
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
    """A run directory: the paths of its files, and its reader (evaluate, predict, export,
    studies, report).

    Missing files read as None; a file that exists but cannot be read raises ``error`` with
    one line naming it.
    """

    def __init__(self, path: str | Path, error: type[CifarlabError] = OutputError) -> None:
        self.path = Path(path)
        self.error = error

    @classmethod
    def of_checkpoint(
        cls, checkpoint: str | Path, error: type[CifarlabError] = OutputError
    ) -> RunDir:
        """The run a checkpoint argument names: itself when a folder, else the checkpoint's
        folder (whose temperature.json, evaluation/ and export/ belong to it)."""
        checkpoint = Path(checkpoint)
        return cls(checkpoint if checkpoint.is_dir() else checkpoint.parent, error)

    # ----------------------------------------------------------------------- its files

    @property
    def recipe_path(self) -> Path:
        return self.path / RECIPE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def previous_path(self) -> Path:
        """checkpoint.prev.pt: the checkpoint before the last."""
        return self.path / PREVIOUS

    @property
    def best_path(self) -> Path:
        """checkpoint.best.pt (``train.keep_best``)."""
        return self.path / BEST

    @property
    def summary_path(self) -> Path:
        """checkpoint.json: the last checkpoint's step and numbers, readable without torch."""
        return self.path / SUMMARY

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_JSON

    @property
    def history_csv_path(self) -> Path:
        return self.path / HISTORY_CSV

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def figure_path(self, name: str) -> Path:
        """One of the run's figures by name (:data:`RUN_FIGURES`)."""
        if name not in RUN_FIGURES:
            raise ValueError(f"{name!r} is not a figure of a run ({', '.join(RUN_FIGURES)})")
        return self.path / name

    @property
    def loss_figure_path(self) -> Path:
        return self.figure_path(LOSS_FIGURE)

    @property
    def accuracy_figure_path(self) -> Path:
        return self.figure_path(ACCURACY_FIGURE)

    @property
    def confusion_figure_path(self) -> Path:
        return self.figure_path(CONFUSION_FIGURE)

    @property
    def temperature_path(self) -> Path:
        """temperature.json: ``cifarlab evaluate --calibrate``'s, for the checkpoint beside it."""
        return self.path / TEMPERATURE

    @property
    def train_log_path(self) -> Path:
        """train.log: a run's output when a study or a search trains it in the background."""
        return self.path / TRAIN_LOG

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def evaluation_dir(self, tta: str, step: int | None = None) -> Path:
        """Where ``cifarlab evaluate --tta TTA`` writes: beside the training's files. ``step``:
        the evaluation of a checkpoint other than the latest (checkpoint.prev.pt), in a folder
        of its own, so it never replaces the latest's (which the report reads)."""
        if step is None:
            return self.path / EVALUATION_DIR / tta
        return self.path / EVALUATION_DIR / f"{OLDER_STEP_PREFIX}{step}" / tta

    def evaluation(self, tta: str, step: int | None = None) -> EvaluationDir:
        """:meth:`evaluation_dir` as an :class:`EvaluationDir`, read with this run's error."""
        return EvaluationDir(self.evaluation_dir(tta, step), self.error)

    def evaluations(self) -> dict[str, EvaluationDir]:
        """The latest checkpoint's evaluation folders (``evaluation/<tta>/``) by TTA, "none"
        first, then by name; older checkpoints' ``step-<N>`` folders are not among them."""
        folder = self.path / EVALUATION_DIR
        if not folder.is_dir():
            return {}
        ttas = sorted(
            (p.name for p in folder.iterdir() if p.is_dir()),
            key=lambda t: (t != "none", t),
        )
        return {t: self.evaluation(t) for t in ttas if not t.startswith(OLDER_STEP_PREFIX)}

    def export_dir(self, step: int | None = None) -> Path:
        """Where ``cifarlab export`` writes by default; ``step``: the export of a checkpoint
        other than the latest, in a folder of its own, never over the latest's."""
        if step is None:
            return self.path / EXPORT_DIR
        return self.path / EXPORT_DIR / f"{OLDER_STEP_PREFIX}{step}"

    # ----------------------------------------------------------------------- what it holds

    def is_run(self) -> bool:
        """Holds a run's files (finished or not)."""
        markers = (self.metrics_path, self.history_path, self.checkpoint_path, self.previous_path)
        return any(p.is_file() for p in markers)

    def holds_only_run_files(self) -> bool:
        """Holds a run, or nothing but what a run writes (:data:`RUN_ENTRIES`, and the temp
        files of cifarlab.atomic a killed run left): a folder ``cifarlab train`` may use."""
        return self.is_run() or all(
            e in RUN_ENTRIES or is_temp_file(e) for e in os.listdir(self.path)
        )

    def is_finished(self) -> bool:
        return self.metrics_path.is_file()

    @staticmethod
    def is_transient(name: str) -> bool:
        """Whether the entry ``name`` of a run directory is no part of the run's record: its
        lock, and temp files of cifarlab.atomic (left out when a run is copied)."""
        return name == LOCK or is_temp_file(name)

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists() or self.previous_path.exists()

    # ----------------------------------------------------------------------- reading

    def metrics(self) -> dict[str, Any] | None:
        """metrics.json, its numbers checked (:func:`check_metrics`); None before the end."""
        metrics = read_json(self.metrics_path, self.error)
        return None if metrics is None else check_metrics(metrics, self.metrics_path)

    def history(self) -> dict[str, list[Any]] | None:
        return read_json(self.history_path, self.error)

    def recipe(self) -> dict[str, Any] | None:
        """The resolved recipe as a dict (recipe.toml), or None before the first write."""
        path = self.recipe_path
        try:
            return tomlread.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise self.error(f"{path}: cannot read the recipe ({exc})") from None

    def latest_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        return latest_checkpoint(self.path)


# The names a run (training, evaluate, export, a study's or a search's worker) puts directly
# in its directory.
RUN_ENTRIES = frozenset(
    {
        RECIPE,
        CHECKPOINT,
        PREVIOUS,
        BEST,
        SUMMARY,
        HISTORY_JSON,
        HISTORY_CSV,
        METRICS,
        *RUN_FIGURES,
        TEMPERATURE,
        EVALUATION_DIR,
        EXPORT_DIR,
        TENSORBOARD_DIR,
        TRAIN_LOG,
        LOCK,
    }
)


class EvaluationDir:
    """A folder of ``cifarlab evaluate``'s outputs: a run's ``evaluation/<tta>/``
    (:meth:`RunDir.evaluation`), or any ``--out``. Missing files read as None."""

    def __init__(self, path: str | Path, error: type[CifarlabError] = OutputError) -> None:
        self.path = Path(path)
        self.error = error

    @property
    def evaluation_path(self) -> Path:
        return self.path / EVALUATION

    @property
    def confusion_figure_path(self) -> Path:
        return self.path / CONFUSION_FIGURE

    @property
    def reliability_figure_path(self) -> Path:
        return self.path / RELIABILITY_FIGURE

    @property
    def corruptions_path(self) -> Path:
        """corruptions.json (``--corruptions``)."""
        return self.path / CORRUPTIONS_JSON

    @property
    def corruptions_figure_path(self) -> Path:
        return self.path / CORRUPTIONS_FIGURE

    def evaluation(self) -> Any:
        """evaluation.json as read (checked by its owner, cifarlab.evaluate), or None."""
        return read_json(self.evaluation_path, self.error)

    def corruptions(self) -> Any:
        """corruptions.json as read (checked by its owner, cifarlab.robustness), or None."""
        return read_json(self.corruptions_path, self.error)


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
