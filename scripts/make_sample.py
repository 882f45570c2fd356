"""Build the bundled CIFAR-10 sample from a full copy (deterministic).

A stratified, seeded subset: 200 images per class from the training batches and
50 per class from test_batch (2,000 + 500 images), written in the official python
layout -- five training batches of 400 images, test_batch and batches.meta, each
a protocol-2 pickle of a dict with bytes keys written the way Python 2 wrote the
originals (bytes as BINSTRING, numpy.core.multiarray._reconstruct), so the sample
exercises the same reader path as the real files. The same source and seed give
byte-identical files.

    python scripts/make_sample.py [--source /work/shared/cifar10] [--out src/cifarlab/data/sample]
"""

from __future__ import annotations

import argparse
import pickle
import struct
from pathlib import Path

import numpy as np

from cifarlab.data.readers import FOLDER_NAME, META_FILE, TEST_FILE, TRAIN_FILES, parse_meta
from cifarlab.data.safe_pickle import safe_load

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50
N_TRAIN_BATCHES = 5
SEED = 20240601

_RECONSTRUCT = np.zeros(0).__reduce__()[0]


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us change how bytes are written
    """Protocol-2 pickles as Python 2 wrote them: bytes as (SHORT_)BINSTRING, not
    ``_codecs.encode`` calls, and numpy's reconstructor under its numpy 1.x name."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dump_py2(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def _batches_dir(source: Path) -> Path:
    return source if (source / TEST_FILE).is_file() else source / FOLDER_NAME


def _read_raw(path: Path) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in safe_load(path).items()}
    filenames = [f if isinstance(f, bytes) else f.encode() for f in batch["filenames"]]
    return batch["data"], np.asarray(batch["labels"], dtype=np.int64), filenames


def _pick(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of each class, returned in their original order."""
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(chosen))


def make_sample(source: Path, out: Path, seed: int = SEED) -> Path:
    """Write the sample's cifar-10-batches-py folder under ``out``; return that folder."""
    src = _batches_dir(source)
    parts = [_read_raw(src / f) for f in TRAIN_FILES]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    filenames = [name for p in parts for name in p[2]]
    test_data, test_labels, test_filenames = _read_raw(src / TEST_FILE)
    classes = parse_meta(safe_load(src / META_FILE), str(src / META_FILE))

    rng = np.random.default_rng(seed)
    train_idx = _pick(labels, TRAIN_PER_CLASS, rng)
    test_idx = _pick(test_labels, TEST_PER_CLASS, rng)

    dest = out / FOLDER_NAME
    dest.mkdir(parents=True, exist_ok=True)
    per_batch = len(train_idx) // N_TRAIN_BATCHES
    for i, fname in enumerate(TRAIN_FILES):
        idx = train_idx[i * per_batch : (i + 1) * per_batch]
        batch = {
            b"batch_label": f"training batch {i + 1} of {N_TRAIN_BATCHES}".encode(),
            b"labels": [int(x) for x in labels[idx]],
            b"data": np.ascontiguousarray(data[idx]),
            b"filenames": [filenames[j] for j in idx],
        }
        dump_py2(batch, dest / fname)
    dump_py2(
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [int(x) for x in test_labels[test_idx]],
            b"data": np.ascontiguousarray(test_data[test_idx]),
            b"filenames": [test_filenames[j] for j in test_idx],
        },
        dest / TEST_FILE,
    )
    dump_py2(
        {
            b"num_cases_per_batch": per_batch,
            b"label_names": [c.encode() for c in classes],
            b"num_vis": 3072,
        },
        dest / META_FILE,
    )
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=Path("/work/shared/cifar10"),
        help="full CIFAR-10: cifar-10-batches-py/ or the folder holding it",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "src/cifarlab/data/sample",
        help="folder to write cifar-10-batches-py/ into",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    dest = make_sample(args.source, args.out, args.seed)
    total = sum(f.stat().st_size for f in dest.iterdir())
    print(f"wrote {dest} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
