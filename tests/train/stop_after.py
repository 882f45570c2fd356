"""Stop a training right after its step-N checkpoint is in place, as a crash there would:
the run directory then holds exactly what a resume starts from."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from cifarlab.train import loop


class Stop(Exception):
    """Raised by the patched save once the step-N checkpoint is written."""


@contextlib.contextmanager
def stopped_after_checkpoint(monkeypatch: pytest.MonkeyPatch, step: int) -> Iterator[None]:
    """Run the block's training until its step-``step`` checkpoint is saved, then stop it
    (the block must raise Stop, which is caught here)."""
    real_save = loop.save

    def save_then_stop(state, ctx):
        path = real_save(state, ctx)
        if state.step == step:
            raise Stop
        return path

    with monkeypatch.context() as m:
        m.setattr(loop, "save", save_then_stop)
        with pytest.raises(Stop):
            yield
