"""One epoch of `seed-improved`: cifarlab's pipeline vs the seed report's own, side by side.

The report's pipeline: torchvision's `CIFAR10` dataset (its md5 check bypassed, since the
local copy's image order differs from the official files), PIL transforms applied per image
every epoch (RandomHorizontalFlip, ColorJitter(0.2, 0.2, 0.2), ToTensor, Normalize(0.5, 0.5)),
`DataLoader(batch_size=32, shuffle=True, num_workers=2)`, the same model, Adam(7e-4, wd 1e-5).
cifarlab's: `cifarlab train --recipe seed-improved --epochs 1` as a subprocess (so its peak
RSS is measured too). Both train on the same 40,000-image split for one epoch and report
validation accuracy on the same 10,000 held-out images.

    python benchmarks/bench_epoch.py --data-dir ../shared/cifar10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def report_pipeline(data_dir: Path, epochs: int, seed: int) -> dict:
    import torch
    import torch.nn.functional as F
    import torchvision
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    from cifarlab.data import load_cifar10, split_train_val
    from cifarlab.models import create_model

    class LocalCIFAR10(torchvision.datasets.CIFAR10):
        # torchvision verifies the official md5 sums; this copy's order (and md5) differs.
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = list(load_cifar10(data_dir).classes)
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    norm = transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    train_tf = transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(0.2, 0.2, 0.2),
            transforms.ToTensor(),
            norm,
        ]
    )
    val_tf = transforms.Compose([transforms.ToTensor(), norm])
    root = data_dir.parent if data_dir.name == "cifar-10-batches-py" else data_dir
    labels = load_cifar10(data_dir).train_labels
    train_idx, val_idx = split_train_val(labels, 0.2, 42)  # the same split cifarlab uses
    train_ds = Subset(LocalCIFAR10(str(root), train=True, transform=train_tf), train_idx.tolist())
    val_ds = Subset(LocalCIFAR10(str(root), train=True, transform=val_tf), val_idx.tolist())
    torch.manual_seed(seed)
    model = create_model("seednet-improved")
    opt = torch.optim.Adam(model.parameters(), lr=7e-4, weight_decay=1e-5)
    loader = DataLoader(train_ds, batch_size=32, shuffle=True, num_workers=2)
    val_loader = DataLoader(val_ds, batch_size=len(val_ds), num_workers=2)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        x, y = next(iter(val_loader))
        val_acc = (model(x).argmax(1) == y).float().mean().item()
    return {"epoch_s": train_s / epochs, "val_acc": val_acc}


def cifarlab_pipeline(data_dir: Path, epochs: int, seed: int, sets: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "cifarlab",
            "train",
            "--recipe",
            "seed-improved",
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--no-progress",
            *(a for kv in sets for a in ("--set", kv)),
        ]
        wall = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - wall
        m = json.loads((out / "metrics.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "epoch_s": m["train_time_s"] / epochs,
        "val_acc": m["val_accuracy"],
        "wall_s": wall,
        "outside_training_s": wall - m["train_time_s"],
        "peak_rss_mb": peak_mb,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/cifar10")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="K=V",
        help="a recipe override for cifarlab's run",
    )
    args = p.parse_args()
    data_dir = Path(args.data_dir).resolve()
    ours = cifarlab_pipeline(data_dir, args.epochs, args.seed, args.set)
    theirs = report_pipeline(data_dir, args.epochs, args.seed)
    print(f"{'pipeline':<22} {'s/epoch':>8} {'val acc':>8}")
    print(
        f"{'report (torchvision)':<22} {theirs['epoch_s']:>8.1f} {theirs['val_acc'] * 100:>7.2f}%"
    )
    label = "cifarlab" + "".join(f" {kv}" for kv in args.set)
    print(f"{label:<22} {ours['epoch_s']:>8.1f} {ours['val_acc'] * 100:>7.2f}%")
    print(
        f"speed-up: {theirs['epoch_s'] / ours['epoch_s']:.2f}x per epoch; "
        f"cifarlab command wall time {ours['wall_s']:.1f} s, of which "
        f"{ours['outside_training_s']:.1f} s outside training steps (start-up, data, 25 "
        f"evaluations, checkpoints, test, figures); peak RSS {ours['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
