"""Complete, atomic checkpoints (STYLE.md 6).

A checkpoint holds everything a resume needs: model (unwrapped from DDP or
torch.compile), optimizer, step, RNG states, running metrics, history, the
recipe, class names, normalisation, and library versions. It is written to a
temporary file, fsynced and renamed, so a crash never leaves a half-written
``checkpoint.pt``; the one it replaces is kept as ``checkpoint.prev.pt``, and
a readable ``checkpoint.json`` summary sits beside it. Loading uses
``torch.load(weights_only=True)``: a file carrying arbitrary objects is refused.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifarlab import __version__
from cifarlab.errors import CheckpointError

FORMAT = "cifarlab-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
SUMMARY = "checkpoint.json"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict[str, Any]:
    """Every global RNG state that training touches (dropout uses torch's)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_state_to_list(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_s = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_s["keys"].numpy().astype(np.uint32),
            np_s["pos"],
            np_s["has_gauss"],
            np_s["cached_gaussian"],
        )
    )
    random.setstate(_python_state_from_list(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_list(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_list(state: list):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def versions() -> dict[str, str]:
    return {"cifarlab": __version__, "torch": str(torch.__version__)}


def save_checkpoint(run_dir: str | Path, payload: dict[str, Any], summary: dict[str, Any]) -> Path:
    """Write ``payload`` atomically as run_dir/checkpoint.pt and ``summary`` as checkpoint.json.

    Order: the new checkpoint goes to a temp file (fsynced); the current checkpoint.pt
    is hard-linked to checkpoint.prev.pt; the temp file is renamed over checkpoint.pt.
    A crash at any moment leaves a complete checkpoint.pt (once one was written), and a
    failed write (disk full, I/O error) raises CheckpointError and leaves no temp file.
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        **payload,
    }
    step = payload.get("step")
    tmp = run_dir / f".{CHECKPOINT}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            _test_pause("write", step)
            f.flush()
            os.fsync(f.fileno())
        _test_pause("rotate", step)
        if path.exists() and _looks_complete(path):
            _keep_previous(path, run_dir / PREVIOUS)
        _test_pause("replace", step)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # torch.save wraps the writer's OSError (ENOSPC, EIO) in a RuntimeError.
        os_error = _os_error_in(exc)
        if os_error is None:
            raise  # not an I/O failure: a bug, keep the traceback
        raise CheckpointError(
            f"{path}: could not write the checkpoint ({os_error.strerror or os_error}); "
            f"the previous checkpoint is kept. Free disk space or choose another --out"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)  # gone after a successful rename; removed after a failure
    _fsync_dir(run_dir)
    _test_pause("summary", step)
    write_json_atomic(
        run_dir / SUMMARY,
        {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **summary},
    )
    return path


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (itself, or in its cause/context chain), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


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
    link = previous.with_name(f".{previous.name}.tmp-{os.getpid()}")
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


# Tests only (tests/reliability): "PHASE@STEP" makes save_checkpoint announce on stderr
# that it reached PHASE ("write", "rotate", "replace", "summary") of the checkpoint for
# STEP, then sleep, so a test can SIGKILL the process at exactly that point.
TEST_PAUSE_ENV = "CIFARLAB_TEST_CHECKPOINT_PAUSE"


def _test_pause(phase: str, step: Any) -> None:
    spec = os.environ.get(TEST_PAUSE_ENV)
    if not spec:
        return
    want_phase, _, want_step = spec.partition("@")
    if want_phase == phase and want_step == str(step):
        print(
            f"cifarlab-test: paused at checkpoint {phase} step {step}", file=sys.stderr, flush=True
        )
        time.sleep(120)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """JSON to a temp file, fsync, rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CheckpointError(f"{path}: could not write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a cifarlab checkpoint safely; a run directory means its checkpoint.pt.

    Damaged, empty, truncated, bit-flipped or foreign files raise CheckpointError naming
    the file: the archive's CRC32 checksums are verified before torch reads it (torch.load
    itself does not check them, so a flipped bit in a tensor would load silently), and
    ``weights_only=True`` refuses any object other than tensors and plain data.
    """
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
    for key in ("model", "recipe", "step"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    model = payload["model"]
    if not isinstance(model, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        raise CheckpointError(f"{path}: 'model' is not a state dict of tensors; not loadable")
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
