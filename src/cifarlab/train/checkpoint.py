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

import json
import os
import pickle
import random
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
    """Write ``payload`` atomically as run_dir/checkpoint.pt and ``summary`` as checkpoint.json."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        **payload,
    }
    tmp = run_dir / f".{CHECKPOINT}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.replace(path, run_dir / PREVIOUS)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"{path}: could not write the checkpoint ({exc.strerror or exc}); "
            f"the previous checkpoint is kept. Free disk space or choose another --out."
        ) from None
    _fsync_dir(run_dir)
    write_json_atomic(
        run_dir / SUMMARY,
        {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **summary},
    )
    return path


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
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: could not write ({exc.strerror or exc})") from None


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

    Damaged, empty or foreign files raise CheckpointError naming the file.
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
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling failed"
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused: the file carries Python objects other than tensors and plain "
                f"data ({_global_name(str(exc))}); only load checkpoints you trust with other tools"
            ) from None
        raise CheckpointError(f"{path}: damaged checkpoint ({first})") from None
    except (
        RuntimeError,
        EOFError,
        ValueError,
        zipfile.BadZipFile,
        OSError,
        KeyError,
        UnicodeDecodeError,
        AttributeError,
        TypeError,
        IndexError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: damaged or truncated checkpoint ({first[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cifarlab checkpoint (no '{FORMAT}' format tag)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format_version']} is newer than this cifarlab "
            f"({FORMAT_VERSION}); upgrade cifarlab"
        )
    for key in ("model", "recipe", "step"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return payload


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
