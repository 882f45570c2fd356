"""The bundled sample: a small, stratified subset stored like the official files."""

from __future__ import annotations

import pickle
import pickletools

import numpy as np

from cifarlab.data import sample_dir


def test_sample_is_small_and_stratified(sample_data):
    total = sum(p.stat().st_size for p in sample_dir().iterdir())
    assert total <= 8_000_000
    assert np.array_equal(np.bincount(sample_data.train_labels, minlength=10), [200] * 10)
    assert np.array_equal(np.bincount(sample_data.test_labels, minlength=10), [50] * 10)
    # Distinct images, not one image repeated.
    flat = sample_data.train_images.reshape(len(sample_data.train_images), -1)
    assert len(np.unique(flat, axis=0)) == len(flat)


def test_sample_files_are_python2_style_pickles():
    for i in range(1, 6):
        raw = (sample_dir() / f"data_batch_{i}").read_bytes()
        assert raw[:2] == b"\x80\x02"  # protocol 2, like the originals
        ops = list(pickletools.genops(raw))
        globals_used = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
        assert globals_used == {
            "numpy.core.multiarray _reconstruct",
            "numpy ndarray",
            "numpy dtype",
        }
        batch = pickle.loads(raw, encoding="bytes")
        assert sorted(batch) == [b"batch_label", b"data", b"filenames", b"labels"]
        assert batch[b"data"].shape == (400, 3072) and len(batch[b"filenames"]) == 400
        assert batch[b"batch_label"] == f"training batch {i} of 5".encode()
    meta = pickle.loads((sample_dir() / "batches.meta").read_bytes(), encoding="bytes")
    assert meta[b"label_names"][0] == b"airplane" and meta[b"num_vis"] == 3072
