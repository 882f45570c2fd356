"""`cifarlab train --tensorboard`: the event files, read back with TensorBoard's own reader."""

from __future__ import annotations

import json

import pytest


def test_tensorboard_events_match_history(tiny_runs):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tiny_runs["seed-baseline"]
    history = json.loads((run / "history.json").read_text())
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "no event file written"
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"} <= tags
    for tag, key in (
        ("loss/train", "train_loss"),
        ("loss/val", "val_loss"),
        ("accuracy/train", "train_acc"),
        ("accuracy/val", "val_acc"),
        ("lr", "lr"),
    ):
        expected = [
            (s, v) for s, v in zip(history["step"], history[key], strict=True) if v is not None
        ]
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in expected], tag
        # float32 in the event file
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6), tag
