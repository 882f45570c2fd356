"""A checkpoint write that fails (disk full, I/O error) at a random checkpoint of a run.

The run must stop with a one-line cifarlab error, leave no temp file, keep the previous
checkpoint loadable, and resuming (once the disk is fine again) must end exactly as the
uninterrupted run: no data lost.
"""

from __future__ import annotations

import builtins
import errno
import os
import random
from pathlib import Path

import pytest
import torch
from relhelpers import (
    CHECKPOINT_EVERY,
    SAME_AS_REFERENCE,
    TOTAL_STEPS,
    same_result,
    temp_files,
    train_argv,
)

import cifarlab.atomic as writer_module
from cifarlab.cli.main import main
from cifarlab.rundir import load_checkpoint

SEED = int(os.environ.get("CIFARLAB_RELIABILITY_SEED", "8"))
CHECKPOINTS = TOTAL_STEPS // CHECKPOINT_EVERY  # written by the tiny run


class _FailingFile:
    """A writable file whose write() raises ``err`` once ``limit`` bytes have gone through."""

    def __init__(self, f, limit: int, err: int) -> None:
        self._f, self._limit, self._err, self._n = f, limit, err, 0

    def write(self, data):
        if self._n + len(data) > self._limit:
            raise OSError(self._err, os.strerror(self._err))
        self._n += len(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    def fileno(self) -> int:
        return self._f.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


class Fault:
    """Makes the ``at``-th checkpoint write fail in one way; counts checkpoint writes."""

    def __init__(self, kind: str, at: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind, self.at, self.count = kind, at, 0
        self._tmp_of: str = ".checkpoint.pt.tmp-"
        real_open, real_replace, real_link, real_fsync = (
            builtins.open,
            os.replace,
            os.link,
            os.fsync,
        )
        real_save = torch.save

        def counting_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            name = Path(file).name if isinstance(file, (str, os.PathLike)) else ""
            if name.startswith(".checkpoint.pt.tmp-") and "w" in mode:
                self.count += 1
                if self.fires("write-enospc"):
                    return _FailingFile(f, limit=1 << 20, err=errno.ENOSPC)
                if self.fires("write-eio"):
                    return _FailingFile(f, limit=1 << 16, err=errno.EIO)
            if name.startswith(".checkpoint.json.tmp-") and self.fires("json-enospc"):
                return _FailingFile(f, limit=10, err=errno.ENOSPC)
            return f

        def failing_save(obj, f, *args, **kwargs):
            if self.fires("save-enospc"):
                f.write(b"PK\x03\x04" + bytes(4096))  # half a file, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_save(obj, f, *args, **kwargs)

        def failing_fsync(fd):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if ".checkpoint.pt.tmp-" in target and self.fires("fsync-eio"):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real_fsync(fd)

        def failing_link(src, dst, *args, **kwargs):
            if self.fires("link-enospc"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_link(src, dst, *args, **kwargs)

        def failing_replace(src, dst, *args, **kwargs):
            if Path(src).name.startswith(".checkpoint.pt.tmp-") and self.fires("rename-eio"):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real_replace(src, dst, *args, **kwargs)

        # The atomic writer's own open() (cifarlab.atomic, which writes every checkpoint),
        # and torch.save / os.* as it and the checkpoint rotation call them.
        monkeypatch.setattr(writer_module, "open", counting_open, raising=False)
        monkeypatch.setattr(torch, "save", failing_save)
        monkeypatch.setattr(os, "fsync", failing_fsync)
        monkeypatch.setattr(os, "link", failing_link)
        monkeypatch.setattr(os, "replace", failing_replace)

    def fires(self, kind: str) -> bool:
        return self.kind == kind and self.count == self.at


# (fault, expected text in the message, does checkpoint.pt hold the failed step afterwards?)
FAULTS = [
    ("save-enospc", "No space left on device", False),
    ("write-enospc", "No space left on device", False),
    ("write-eio", "Input/output error", False),
    ("fsync-eio", "Input/output error", False),
    ("link-enospc", "No space left on device", False),
    ("rename-eio", "Input/output error", False),
    # checkpoint.json is written after checkpoint.pt is in place: the new checkpoint stays.
    ("json-enospc", "No space left on device", True),
]


@pytest.mark.parametrize("kind,text,new_kept", FAULTS, ids=[f[0] for f in FAULTS])
def test_failed_checkpoint_write_stops_cleanly_and_loses_nothing(
    kind, text, new_kept, tmp_path, reference_run, ledger, monkeypatch, capsys
):
    at = random.Random(f"{SEED}-{kind}").randint(2, CHECKPOINTS - 1)
    run = tmp_path / "run"
    with ledger.case("write_failure", f"{kind} at checkpoint {at} of {CHECKPOINTS}") as case:
        case.simulated = True  # the error is raised by a patched call, the disk is fine
        with monkeypatch.context() as m:
            fault = Fault(kind, at, m)
            capsys.readouterr()
            code = main(train_argv(run))
            err = capsys.readouterr().err.strip()
        assert fault.count == at, f"the fault did not fire ({fault.count} checkpoint writes)"
        assert code == 2
        assert len(err.splitlines()) == 1 and err.startswith("cifarlab: error: "), err
        assert text in err and str(run) in err, err
        assert temp_files(run) == [], temp_files(run)
        assert not (run / "metrics.json").exists()
        expected = (at if new_kept else at - 1) * CHECKPOINT_EVERY
        try:
            kept = load_checkpoint(run)["step"]
        except Exception:
            case.check(True, "last good checkpoint loads, at the expected step")
            raise
        assert not case.check(kept != expected, "last good checkpoint loads, at the expected step")
        if (run / "checkpoint.prev.pt").exists():
            load_checkpoint(run / "checkpoint.prev.pt")

        # The disk is fine again: resuming ends exactly as the uninterrupted run.
        assert main(["train", "--resume", str(run), "--data-dir", "sample", "--no-progress"]) == 0
        lost = case.check(not same_result(run, reference_run), SAME_AS_REFERENCE)
        assert not lost, "the resumed run differs from the uninterrupted one"
        case.note = f"stopped with: {err[len('cifarlab: error: ') :][:160]}"
