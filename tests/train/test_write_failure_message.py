"""A checkpoint write that fails says what is kept: the previous checkpoint, or none yet."""

from __future__ import annotations

import errno

import pytest
import torch

from cifarlab.errors import CheckpointError
from cifarlab.train.loop import train

TINY = {"train.epochs": 0.2, "train.eval_points": 2, "system.threads": 1}


def _fail_save_at(monkeypatch, nth: int) -> None:
    real, calls = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize(
    "nth,kept", [(1, "no checkpoint was written yet"), (2, "the previous checkpoint is kept")]
)
def test_a_full_disk_names_what_is_kept(nth, kept, tmp_path, sample_data, monkeypatch):
    _fail_save_at(monkeypatch, nth)
    with pytest.raises(CheckpointError) as err:
        train(
            "seed-baseline",
            out_dir=tmp_path / "run",
            data=sample_data,
            overrides=TINY,
            progress=False,
            log=lambda s: None,
        )
    message = str(err.value)
    assert "No space left on device" in message and kept in message and "\n" not in message
    assert not list((tmp_path / "run").glob(".*.tmp-*"))  # no temp file left behind
