"""A batch file is a pickle; the restricted unpickler refuses anything but numpy arrays.

The malicious payloads here would create a file if they ran; each test asserts the
refusal *and* that the file does not exist afterwards.
"""

from __future__ import annotations

import codecs
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data import load_cifar10
from cifarlab.data.readers import read_python_dir, read_tarball
from cifarlab.data.safe_pickle import safe_loads
from cifarlab.errors import DataError


class _Payload:
    """Pickles to a call of os.system: `touch <marker>` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_batch(marker: Path) -> bytes:
    # A plausible batch whose labels entry carries the payload.
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": _Payload(marker)}
    return pickle.dumps(batch, protocol=2)


def test_plain_pickle_would_run_the_payload(tmp_path):
    # Guard for the tests below: the payload really does create the file when unpickled.
    marker = tmp_path / "pwned"
    pickle.loads(_evil_batch(marker), encoding="bytes")
    assert marker.exists()


def test_payload_in_python_layout_is_refused_and_never_runs(sample_copy, tmp_path):
    marker = tmp_path / "pwned"
    (sample_copy / "data_batch_1").write_bytes(_evil_batch(marker))
    with pytest.raises(DataError) as err:
        load_cifar10(sample_copy, use_cache=False)
    msg = str(err.value)
    assert str(sample_copy / "data_batch_1") in msg
    assert "refused to unpickle" in msg and "system" in msg  # posix.system / nt.system
    assert "\n" not in msg
    assert not marker.exists()


def test_payload_in_tarball_is_refused_and_never_runs(sample_copy, tmp_path, helpers):
    marker = tmp_path / "pwned"
    (sample_copy / "data_batch_1").write_bytes(_evil_batch(marker))
    tarball = helpers.make_tarball(sample_copy, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match=r"cifar-10-batches-py/data_batch_1: refused to unpickle"):
        read_tarball(tarball)
    assert not marker.exists()


def test_payload_in_tarball_through_load_cifar10(sample_copy, tmp_path, helpers):
    marker = tmp_path / "pwned"
    (sample_copy / "test_batch").write_bytes(_evil_batch(marker))
    tar_dir = tmp_path / "tar"
    tar_dir.mkdir()
    helpers.make_tarball(sample_copy, tar_dir / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="refused to unpickle"):
        load_cifar10(tar_dir, use_cache=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("builtins", "eval"),
        ("subprocess", "check_output"),
        ("numpy", "load"),
        ("numpy.testing", "rundocs"),
    ],
)
def test_any_global_outside_the_table_is_refused(module, name):
    blob = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00."
    with pytest.raises(DataError, match=rf"x: refused to unpickle {module}\.{name}"):
        safe_loads(blob, name="x")


def test_codecs_encode_is_admitted_only_for_latin1(tmp_path):
    ok = pickle.dumps({b"k": b"\xff\x00"}, protocol=2)  # Python 3 writes bytes via _codecs.encode
    assert safe_loads(ok, name="x") == {b"k": b"\xff\x00"}

    class Rot13:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(DataError, match="refused to unpickle _codecs.encode with encoding 'rot13'"):
        safe_loads(pickle.dumps(Rot13(), protocol=2), name="x")


def test_clean_sample_copy_still_loads(sample_copy, sample_data):
    data = read_python_dir(sample_copy)
    assert np.array_equal(data.train_images, sample_data.train_images)


def test_tar_reader_never_extracts(sample_copy, tmp_path, helpers, monkeypatch):
    tarball = helpers.make_tarball(sample_copy, tmp_path / "cifar-10-python.tar.gz")

    def no_extract(*args, **kwargs):
        raise AssertionError("the tar reader must not extract")

    monkeypatch.setattr(tarfile.TarFile, "extract", no_extract)
    monkeypatch.setattr(tarfile.TarFile, "extractall", no_extract)
    before = set(tmp_path.rglob("*"))
    read_tarball(tarball)
    assert set(tmp_path.rglob("*")) == before
