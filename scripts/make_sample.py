"""Build the bundled CIFAR-10 sample from a full copy (deterministic).

A stratified, seeded subset: 200 images per class from the training batches and
50 per class from test_batch (2,000 + 500 images), written in the official python
layout -- five training batches of 400 images, test_batch and batches.meta, each
a protocol-2 pickle of a dict with bytes keys written the way Python 2 wrote the
originals (bytes as BINSTRING, numpy.core.multiarray._reconstruct), so the sample
exercises the same reader path as the real files. The same source and seed give
byte-identical files.

    python scripts/make_sample.py [--source /work/shared/cifar10] [--out src/cifarlab/data/sample]

``--dataset cifar100`` builds the bundled CIFAR-100 sample instead, from a full copy as
image folders (``train/<fine class>/*.png`` + ``test/<fine class>/*.png``, 500 + 100 per
class; anything else is refused): 10 train and 3 test images per fine class, chosen with
the seed, written as ``cifar-100-python/{train,test,meta}`` in the official layout (dicts
with fine_labels, coarse_labels, filenames, data; the coarse labels from
``cifarlab.data.cifar100.FINE_TO_COARSE``). After rebuilding it, update ``SAMPLE_100`` in
``cifarlab/data/checksums.py`` with the sums this prints.

    python scripts/make_sample.py --dataset cifar100 --source DIR [--out src/cifarlab/data/sample100]
"""

from __future__ import annotations

import argparse
import pickle
import struct
from pathlib import Path

import numpy as np

from cifarlab.data import cifar100 as c100
from cifarlab.data.checksums import md5_hex
from cifarlab.data.readers import FOLDER_NAME, META_FILE, TEST_FILE, TRAIN_FILES, parse_meta
from cifarlab.data.safe_pickle import safe_load

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50
N_TRAIN_BATCHES = 5
SEED = 20240601
TRAIN_PER_CLASS_100 = 10
TEST_PER_CLASS_100 = 3
FULL_100 = {"train": 500, "test": 100}  # images per class in a full CIFAR-100

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


def _png_split(source: Path, split: str) -> dict[str, list[str]]:
    """Each fine class's sorted image names in ``source/split``; a full CIFAR-100 or SystemExit."""
    root = source / split
    if not root.is_dir():
        raise SystemExit(f"{root}: missing; --source must hold train/<class>/ and test/<class>/")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if tuple(names) != c100.FINE_CLASSES:
        raise SystemExit(f"{root}: class folders are not CIFAR-100's 100 fine classes")
    files = {}
    for cls in names:
        files[cls] = sorted(p.name for p in (root / cls).iterdir() if p.suffix == ".png")
        if len(files[cls]) != FULL_100[split]:
            raise SystemExit(
                f"{root / cls}: {len(files[cls])} PNGs, expected {FULL_100[split]} (a full copy)"
            )
    return files


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.size != (32, 32):
            raise SystemExit(f"{path}: {im.size[0]}x{im.size[1]}, expected 32x32")
        return np.asarray(im.convert("RGB"))


def make_sample100(source: Path, out: Path, seed: int = SEED) -> Path:
    """Write the CIFAR-100 sample's cifar-100-python folder under ``out``; return that folder."""
    rng = np.random.default_rng(seed)
    dest = out / c100.FOLDER_NAME
    dest.mkdir(parents=True, exist_ok=True)
    per_class = {"train": TRAIN_PER_CLASS_100, "test": TEST_PER_CLASS_100}
    for split in ("train", "test"):
        files = _png_split(source, split)
        chosen = [
            (label, name)
            for label, cls in enumerate(c100.FINE_CLASSES)
            for name in sorted(rng.choice(files[cls], per_class[split], replace=False))
        ]
        order = rng.permutation(len(chosen))  # classes mixed, as in the official files
        chosen = [chosen[i] for i in order]
        images = np.stack(
            [_rgb(source / split / c100.FINE_CLASSES[lab] / name) for lab, name in chosen]
        )
        fine = [int(lab) for lab, _ in chosen]
        batch = {
            b"filenames": [name.encode() for _, name in chosen],
            b"batch_label": f"{'training' if split == 'train' else 'testing'} batch 1 of 1".encode(),
            b"fine_labels": fine,
            b"coarse_labels": [int(c100.FINE_TO_COARSE[f]) for f in fine],
            b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1)),
        }
        dump_py2(batch, dest / split)
    dump_py2(
        {
            b"fine_label_names": [c.encode() for c in c100.FINE_CLASSES],
            b"coarse_label_names": [c.encode() for c in c100.COARSE_CLASSES],
        },
        dest / c100.META_FILE,
    )
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("cifar10", "cifar100"), default="cifar10")
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="cifar10: full CIFAR-10, cifar-10-batches-py/ or the folder holding it "
        "(default /work/shared/cifar10); cifar100: a full CIFAR-100 as train/ + test/ PNG folders",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to write cifar-10-batches-py/ (cifar-100-python/) into "
        "(default src/cifarlab/data/sample, or sample100)",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    package = Path(__file__).resolve().parents[1] / "src/cifarlab/data"
    if args.dataset == "cifar100":
        if args.source is None:
            parser.error("--dataset cifar100 needs --source (a full CIFAR-100 as PNG folders)")
        dest = make_sample100(args.source, args.out or package / "sample100", args.seed)
    else:
        source = args.source or Path("/work/shared/cifar10")
        dest = make_sample(source, args.out or package / "sample", args.seed)
    total = sum(f.stat().st_size for f in dest.iterdir())
    print(f"wrote {dest} ({total / 1e6:.2f} MB)")
    for f in sorted(dest.iterdir()):
        print(f"{md5_hex(f.read_bytes())}  {f.name}")


if __name__ == "__main__":
    main()
