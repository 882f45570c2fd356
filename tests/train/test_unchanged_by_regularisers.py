"""Existing recipes train bit-identically to the code before the regularisers (issue 17).

The regularisers (augment.trivial_augment, augment.random_erasing, augment.mixup,
augment.cutmix, train.ema) are off by default and, off, take nothing from the step's
augmentation generator and change no other draw. ``unchanged_runs.json`` holds fingerprints
of short runs on the bundled sample taken with the code of commit 933cad3, before they were
added (``python tests/train/test_unchanged_by_regularisers.py --write`` on that commit): the
SHA-256 of the final weights, the full history (times left out) and the test metrics. Today's
code must reproduce them exactly.

Bit-identity holds for one torch version on one kind of CPU: float kernels differ between
SIMD levels (AVX2 / AVX-512) and torch releases. The record says which it was taken with;
elsewhere the test skips and says why (regenerate the record on a checkout of 933cad3).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest
import torch

RECORD = Path(__file__).with_name("unchanged_runs.json")

# name -> (recipe, overrides): short runs that between them touch flip, colour jitter,
# translate, batch norm, dropout, Adam, Muon + Nesterov SGD, label smoothing and TTA.
RUNS = {
    "seed-improved": (
        "seed-improved",
        # NCHW, as the record was taken before seed-baseline moved to channels_last.
        {
            "train.epochs": 0.4,
            "train.eval_points": 2,
            "system.threads": 1,
            "system.channels_last": False,
        },
    ),
    "fast94-small": (
        "fast94",
        {
            "train.epochs": 2,
            "train.batch_size": 250,
            "model.options.widths": [16, 32, 32],
            "train.eval_points": 2,
            "system.threads": 1,
        },
    ),
}


def machine() -> dict[str, str]:
    """What bit-identity depends on besides the code."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def fingerprint(run: Path) -> dict:
    """SHA-256 of the final weights (keys sorted), the history without times, test metrics."""
    from cifarlab.rundir import load_checkpoint

    weights = load_checkpoint(run)["model"]
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode())
        digest.update(weights[key].detach().cpu().contiguous().numpy().tobytes())
    history = json.loads((run / "history.json").read_text())
    history.pop("time_s")
    metrics = json.loads((run / "metrics.json").read_text())
    keep = ("test_accuracy", "test_loss", "test_accuracy_tta", "val_accuracy", "confusion")
    return {
        "weights_sha256": digest.hexdigest(),
        "history": history,
        "metrics": {k: metrics[k] for k in keep if k in metrics},
    }


def run_fingerprint(name: str, out: Path, data) -> dict:
    from cifarlab.train.loop import train

    recipe, overrides = RUNS[name]
    train(recipe, out_dir=out, data=data, overrides=overrides, progress=False, log=lambda s: None)
    return fingerprint(out)


@pytest.mark.parametrize("name", list(RUNS))
def test_an_existing_recipe_trains_bit_identically_to_before_the_regularisers(
    name, tmp_path, sample_data
):
    record = json.loads(RECORD.read_text())
    if record["machine"] != machine():
        pytest.skip(f"record taken on {record['machine']}, this is {machine()}")
    assert run_fingerprint(name, tmp_path / name, sample_data) == record["runs"][name]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    from cifarlab.data import load_cifar10

    sample = load_cifar10("sample")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: run_fingerprint(name, Path(tmp) / name, sample) for name in RUNS}
    RECORD.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1) + "\n")
    print(f"wrote {RECORD}")
