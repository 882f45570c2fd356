"""Between checkpoint points a training step reads no tensor value back on the host.

On a GPU every such read (``loss.item()``, ``int(correct)``, ``bool(flag)``, ...) makes the
host wait for the device, so small models run far below their compute. On the CPU there is
no device to wait for, but the same reads are visible: a TorchFunctionMode sees every
``.item()``, ``bool()``, ``int()``, ``float()``, ``.tolist()``, ``.cpu()`` and ``.numpy()`` of
a tensor. The test runs whole training runs with ``train_segment`` (all steps between two
checkpoint points) under that mode and finds none in cifarlab's code or in the model. The
only reads allowed are torch.optim's own step counters, which torch keeps on the CPU on
purpose (``capturable=False``), so reading them never waits for a GPU; tests/gpu runs the same
segments under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from cifarlab.train import loop
from cifarlab.train.loop import train

READS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "cpu", "numpy"}
TORCH_OPTIM = str(Path(torch.optim.__file__).parent)


class HostReads(TorchFunctionMode):
    """Records (what, file:line of the caller) for every read of a tensor value on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in READS:
            caller = sys._getframe(1)
            self.reads.append((name, f"{caller.f_code.co_filename}:{caller.f_lineno}"))
        return func(*args, **(kwargs or {}))


def test_the_counter_sees_each_kind_of_read():
    t = torch.tensor([2.0])
    with HostReads() as mode:
        t.item(), bool(t), int(t), float(t), t.tolist(), t.cpu(), t.numpy()
    assert [r[0] for r in mode.reads] == [
        "item",
        "__bool__",
        "__int__",
        "__float__",
        "tolist",
        "cpu",
        "numpy",
    ]


@pytest.mark.parametrize(
    "recipe,overrides",
    [
        # Adam + batch norm + dropout + flip and colour jitter (the report's final recipe)
        ("seed-improved", {"train.epochs": 0.2, "train.eval_points": 2}),
        # the regularisers of issue 17: TrivialAugment, random erasing, mixup or cutmix per
        # batch with soft targets, and the weights' moving average updated every step
        (
            "seed-improved",
            {
                "train.epochs": 0.2,
                "train.eval_points": 2,
                "augment.trivial_augment": True,
                "augment.random_erasing": 0.5,
                "augment.mixup": 0.8,
                "augment.cutmix": 1.0,
                "train.ema": 0.999,
            },
        ),
        # fastnet: Muon + Nesterov SGD groups, whitening bias frozen mid-run, label smoothing,
        # translate; checkpoint_every adds points that are not evaluation points
        (
            "fast94",
            {
                "train.epochs": 3,
                "train.batch_size": 250,
                "model.options.widths": [16, 32, 32],
                "train.eval_points": 2,
                "train.checkpoint_every": 5,
                "eval.tta": "none",
            },
        ),
    ],
)
def test_no_host_reads_between_checkpoint_points(
    recipe, overrides, tmp_path, sample_data, monkeypatch
):
    segments: list[tuple[int, int, list[tuple[str, str]]]] = []
    real_segment = loop.train_segment

    def counted_segment(state, ctx, stop):
        start = state.step
        with HostReads() as mode:
            real_segment(state, ctx, stop)
        segments.append((start, state.step, mode.reads))

    monkeypatch.setattr(loop, "train_segment", counted_segment)
    train(
        recipe,
        out_dir=tmp_path / "run",
        data=sample_data,
        overrides={**overrides, "system.threads": 1},
        progress=False,
        log=lambda s: None,
    )
    assert len(segments) >= 2 and sum(stop - start for start, stop, _ in segments) >= 10
    reads = [r for _, _, seg in segments for r in seg if not r[1].startswith(TORCH_OPTIM)]
    assert reads == [], f"host reads between checkpoint points: {reads[:5]}"
