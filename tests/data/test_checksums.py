"""The python layout's md5 check: a damaged batch that still unpickles is refused, a copy
of the user's own reads once its sums are recorded in MD5SUMS, and a warm start (the
decoded-array cache) hashes nothing."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data import checksums, load_cifar10, sample_dir
from cifarlab.data.checksums import (
    KNOWN_COPIES,
    OFFICIAL,
    REORDERED,
    SAMPLE,
    read_sums_file,
    verify_copy,
)
from cifarlab.data.readers import REQUIRED_FILES, read_python_dir
from cifarlab.data.safe_pickle import safe_loads
from cifarlab.errors import DataError


def _sums(folder: Path) -> dict[str, str]:
    return {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in REQUIRED_FILES}


def _change_a_pixel(path: Path) -> None:
    """Add 1 to one pixel byte inside the pickle: the file still unpickles, to other data."""
    raw = bytearray(path.read_bytes())
    pixels = pickle.loads(bytes(raw), encoding="bytes")[b"data"]
    at = bytes(raw).find(pixels.tobytes()) + 1234
    raw[at] = (raw[at] + 1) % 256
    path.write_bytes(bytes(raw))
    changed = safe_loads(bytes(raw), name=str(path))[b"data"]
    assert not np.array_equal(changed, pixels)  # the pickle reads, as different pixels


def test_the_bundled_sample_has_the_sums_the_reader_knows():
    # scripts/make_sample.py rebuilding the sample must update checksums.SAMPLE with it.
    assert _sums(sample_dir()) == dict(SAMPLE.md5)
    assert load_cifar10("sample").is_sample


def test_the_tables_list_the_seven_files_of_each_copy():
    for copy in KNOWN_COPIES:
        assert sorted(copy.md5) == sorted(REQUIRED_FILES), copy.label
        assert all(len(d) == 32 and d == d.lower() for d in copy.md5.values()), copy.label
    # torchvision's list for the official archive.
    assert OFFICIAL.md5["data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    assert OFFICIAL.md5["batches.meta"] == "5ff9c542aee3614f3951f8cda6e48888"


@pytest.mark.parametrize("fname", ["data_batch_2", "test_batch"])
def test_a_changed_pixel_in_a_valid_pickle_is_refused(sample_copy, fname):
    _change_a_pixel(sample_copy / fname)
    with pytest.raises(DataError) as err:
        read_python_dir(sample_copy)
    msg = str(err.value)
    assert msg.startswith(f"{sample_copy / fname}: damaged or changed (md5 "), msg
    assert "in the bundled sample, which the other files match" in msg, msg
    assert "replace it with a clean copy" in msg and "\n" not in msg


def test_a_changed_class_name_is_refused(sample_copy):
    meta = sample_copy / "batches.meta"
    meta.write_bytes(meta.read_bytes().replace(b"airplane", b"airplanf"))
    assert pickle.loads(meta.read_bytes(), encoding="bytes")[b"label_names"][0] == b"airplanf"
    with pytest.raises(DataError, match=r"batches.meta: damaged or changed"):
        read_python_dir(sample_copy)


def test_a_copy_of_unknown_sums_is_refused_then_read_once_recorded(
    sample_copy, sample_data, helpers
):
    for fname in REQUIRED_FILES:  # a user's copy, every file re-saved at protocol 4
        obj = pickle.loads((sample_copy / fname).read_bytes(), encoding="bytes")
        (sample_copy / fname).write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(DataError) as err:
        read_python_dir(sample_copy)
    msg = str(err.value)
    assert msg.startswith(f"{sample_copy / 'batches.meta'}: md5 "), msg
    assert "is no known CIFAR-10 file's, nor are the other files'" in msg, msg
    assert msg.endswith(
        f"cd {sample_copy} && md5sum batches.meta data_batch_? test_batch > MD5SUMS"
    ), msg
    helpers.record_sums(sample_copy)
    data = read_python_dir(sample_copy)
    assert np.array_equal(data.train_images, sample_data.train_images)
    # ...and once recorded, that copy is verified like the known ones.
    _change_a_pixel(sample_copy / "data_batch_5")
    with pytest.raises(DataError, match=r"data_batch_5: damaged or changed .* in the sums in "):
        read_python_dir(sample_copy)


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="no md5sum on this machine")
def test_the_command_the_message_gives_records_the_sums(sample_copy):
    (sample_copy / "data_batch_3").write_bytes(
        pickle.dumps(
            pickle.loads((sample_copy / "data_batch_3").read_bytes(), encoding="bytes"), protocol=2
        )
    )
    with pytest.raises(DataError) as err:
        read_python_dir(sample_copy)
    command = str(err.value).rsplit("record your copy's sums: ", 1)[1]
    subprocess.run(command, shell=True, check=True)
    assert len(read_python_dir(sample_copy).train_labels) == 2000


def test_files_of_two_copies_are_refused():
    # Each file is some known copy's, but not all of one: images would be read twice.
    mixed = {**SAMPLE.md5, "data_batch_1": REORDERED.md5["data_batch_1"]}
    with pytest.raises(DataError, match=r"data_batch_1: damaged or changed .* bundled sample"):
        verify_copy(Path("/nowhere"), mixed)
    assert verify_copy(Path("/nowhere"), dict(REORDERED.md5)) is REORDERED


def test_sums_file_formats(tmp_path):
    d = "0123456789abcdef0123456789ABCDEF"
    (tmp_path / "MD5SUMS").write_text(
        f"# made by hand\n{d}  data_batch_1\n{d} *data_batch_2\n{d} ./cifar-10-batches-py/"
        f"test_batch\nMD5 (data_batch_3) = {d}\n\n{d}  readme.html\n"
    )
    copy = read_sums_file(tmp_path)
    assert copy is not None and copy.label == f"the sums in {tmp_path / 'MD5SUMS'}"
    assert set(copy.md5.values()) == {d.lower()}
    assert sorted(copy.md5) == [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "readme.html",
        "test_batch",
    ]
    assert read_sums_file(tmp_path / "nothing-here") is None


@pytest.mark.parametrize(
    "content, problem",
    [
        ("not a sum  data_batch_1\n", "line 1 is not 'MD5  FILE'"),
        (f"{'a' * 32}  data_batch_1\n{'b' * 32}  data_batch_1\n", "lists data_batch_1 twice"),
        (b"\xff\xfe", "not UTF-8 text"),
        ("#" * 70_000, "larger than 65,536 bytes"),
    ],
)
def test_a_bad_sums_file_is_refused_in_one_line(sample_copy, content, problem):
    sums = sample_copy / "MD5SUMS"
    sums.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as err:
        read_python_dir(sample_copy)
    msg = str(err.value)
    assert msg.startswith(f"{sums}: {problem}") and "\n" not in msg, msg


def test_a_sums_file_that_is_a_folder_is_refused(sample_copy):
    (sample_copy / "MD5SUMS").mkdir()
    with pytest.raises(DataError, match=r"MD5SUMS: cannot be read"):
        read_python_dir(sample_copy)


@pytest.mark.usefixtures("own_cache")
def test_a_warm_start_hashes_nothing_and_a_changed_file_is_verified_again(sample_copy, monkeypatch):
    cold = load_cifar10(sample_copy)
    assert not cold.from_cache

    def no_hashing(data: bytes) -> str:
        raise AssertionError("hashed on a warm start")

    with monkeypatch.context() as m:
        m.setattr(checksums, "md5_hex", no_hashing)
        m.setattr("cifarlab.data.readers.md5_hex", no_hashing)
        assert load_cifar10(sample_copy).from_cache
    # A damaged file has a new size or mtime: a new cache key, so it is read and verified.
    _change_a_pixel(sample_copy / "data_batch_4")
    with pytest.raises(DataError, match=r"data_batch_4: damaged or changed"):
        load_cifar10(sample_copy)


@pytest.mark.usefixtures("own_cache")
def test_the_sums_file_is_part_of_the_cache_key(sample_copy, helpers):
    for fname in REQUIRED_FILES:
        obj = pickle.loads((sample_copy / fname).read_bytes(), encoding="bytes")
        (sample_copy / fname).write_bytes(pickle.dumps(obj, protocol=4))
    helpers.record_sums(sample_copy)
    assert not load_cifar10(sample_copy).from_cache
    assert load_cifar10(sample_copy).from_cache
    (sample_copy / "MD5SUMS").unlink()  # the vouching withdrawn: the copy is unknown again
    with pytest.raises(DataError, match=r"is no known CIFAR-10 file's"):
        load_cifar10(sample_copy)


@pytest.mark.full_data
def test_the_full_copy_is_a_known_one(full_data):
    root = Path(os.environ["CIFARLAB_DATA"])  # set, or full_data would have skipped
    folder = root if (root / "data_batch_1").is_file() else root / "cifar-10-batches-py"
    assert verify_copy(folder, _sums(folder)) in (OFFICIAL, REORDERED)
    fresh = load_cifar10(folder, use_cache=False)  # read and verified, not from the cache
    assert not fresh.from_cache
    assert np.array_equal(fresh.test_labels, full_data.test_labels)
