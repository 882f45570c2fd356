"""The three on-disk forms read to identical arrays; each reader validates its input."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data import CIFAR10, load_cifar10
from cifarlab.data.readers import read_image_folders, read_python_dir, read_tarball
from cifarlab.errors import DataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def assert_same(a: CIFAR10, b: CIFAR10) -> None:
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.classes == b.classes


def test_sample_arrays_have_the_documented_layout(sample_data):
    assert sample_data.is_sample
    assert sample_data.classes == CLASSES
    assert sample_data.train_images.shape == (2000, 32, 32, 3)
    assert sample_data.test_images.shape == (500, 32, 32, 3)
    assert sample_data.train_images.dtype == np.uint8
    assert sample_data.train_labels.dtype == np.int64
    assert sample_data.train_images.flags["C_CONTIGUOUS"]
    assert sample_data.test_images.flags["C_CONTIGUOUS"]


def test_pixels_are_decoded_from_plane_major_rows(sample_data):
    # The reference decoding, straight from the pickle: R plane, G plane, B plane.
    with open(Path(sample_data.source.split(" in ")[-1]) / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    rows = raw[b"data"]
    img = sample_data.train_images[400]  # first image of the second batch (400 per batch)
    assert np.array_equal(img[..., 0].ravel(), rows[0, :1024])
    assert np.array_equal(img[..., 1].ravel(), rows[0, 1024:2048])
    assert np.array_equal(img[..., 2].ravel(), rows[0, 2048:])
    assert np.array_equal(sample_data.train_labels[400:800], raw[b"labels"])


def test_three_readers_give_identical_arrays(
    sample_data, sample_copy, sample_tree, tmp_path, helpers
):
    tarball = helpers.make_tarball(sample_copy, tmp_path / "cifar-10-python.tar.gz")
    from_dir = read_python_dir(sample_copy)
    from_tar = read_tarball(tarball)
    from_png = read_image_folders(sample_tree)
    assert_same(from_dir, sample_data)
    assert_same(from_tar, sample_data)
    assert_same(from_png, sample_data)
    assert "archive" in from_tar.source and "image folders" in from_png.source


@pytest.mark.parametrize("form", ["parent", "folder", "tarball-parent", "tarball-file", "images"])
def test_a_data_dir_may_hold_a_form_or_be_one(form, sample_data, tmp_path, helpers):
    folder = helpers.copy_sample(tmp_path / "py")
    tar_dir = tmp_path / "tar"
    tar_dir.mkdir()
    tarball = helpers.make_tarball(folder, tar_dir / "cifar-10-python.tar.gz")
    tree = helpers.write_image_tree(sample_data, tmp_path / "png", per_class=2)
    where = {
        "parent": tmp_path / "py",
        "folder": folder,
        "tarball-parent": tar_dir,
        "tarball-file": tarball,
        "images": tree,
    }[form]
    data = load_cifar10(where, use_cache=False)
    assert not data.is_sample
    if form == "images":
        assert len(data.train_labels) == 20 and len(data.test_labels) == 20
    else:
        assert_same(data, sample_data)


def test_str_keys_and_newer_pickle_protocols_are_accepted(sample_copy, sample_data, helpers):
    # A copy re-saved from Python 3 (latin1-decoded, str keys) at protocols 2, 4 and 5:
    # they use _codecs.encode and numpy's _frombuffer, which the unpickler admits. Its
    # md5 sums are no known copy's, so it reads once the user has recorded them.
    for proto, fname in [(2, "data_batch_1"), (4, "data_batch_2"), (5, "test_batch")]:
        with open(sample_copy / fname, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        (sample_copy / fname).write_bytes(pickle.dumps(batch, protocol=proto))
    with pytest.raises(DataError, match=r"data_batch_1: damaged or changed .* > MD5SUMS$"):
        read_python_dir(sample_copy)
    helpers.record_sums(sample_copy)
    assert_same(read_python_dir(sample_copy), sample_data)


def test_tarball_member_as_symlink_is_refused(sample_copy, tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for f in sorted(sample_copy.iterdir()):
            if f.name != "data_batch_1":
                tar.add(f, arcname=f"cifar-10-batches-py/{f.name}")
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match="data_batch_1: is a link"):
        read_tarball(bad)


@pytest.mark.parametrize("name", ["../evil", "/abs/evil"])
def test_tarball_with_unsafe_member_names_is_refused(sample_copy, tmp_path, name):
    bad = tmp_path / "bad.tar.gz"
    payload = (sample_copy / "batches.meta").read_bytes()
    with tarfile.open(bad, "w:gz") as tar:
        member = tarfile.TarInfo(name)  # TarInfo keeps the name as given (add() strips "/")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
        tar.add(sample_copy, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match="unsafe path"):
        read_tarball(bad)


def test_tarball_missing_a_member_names_it(sample_copy, tmp_path):
    (sample_copy / "data_batch_4").unlink()
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(sample_copy, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match="cifar-10-batches-py/data_batch_4 is missing"):
        read_tarball(tarball)


def test_damaged_tarball_is_a_data_error(sample_copy, tmp_path, helpers):
    tarball = helpers.make_tarball(sample_copy, tmp_path / "cifar-10-python.tar.gz")
    tarball.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 2])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: not a readable tar archive"):
        read_tarball(tarball)


def test_labels_and_data_row_counts_must_match(sample_copy, helpers):
    helpers.write_batch(sample_copy / "data_batch_5", np.zeros((4, 3072), np.uint8), [0, 1, 2])
    with pytest.raises(DataError, match=r"data_batch_5: 3 labels for 4 images"):
        read_python_dir(sample_copy)


def test_data_must_be_uint8(sample_copy, helpers):
    helpers.write_batch(sample_copy / "test_batch", np.zeros((2, 3072), np.float32), [0, 1])
    with pytest.raises(DataError, match=r"test_batch: data must be a uint8 array, got float32"):
        read_python_dir(sample_copy)


def test_meta_must_list_ten_classes(sample_copy):
    (sample_copy / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, 2))
    with pytest.raises(DataError, match=r"batches.meta: label_names must list 10"):
        read_python_dir(sample_copy)


def test_image_tree_with_a_stray_text_file_names_it(small_tree):
    stray = small_tree / "test" / "dog" / "notes.txt"
    stray.write_text("not an image")
    with pytest.raises(DataError, match=r"notes.txt: not an image"):
        read_image_folders(small_tree)


def test_image_tree_without_test_folder_names_it(small_tree):
    import shutil

    shutil.rmtree(small_tree / "test")
    with pytest.raises(DataError, match=r"test: missing"):
        read_image_folders(small_tree)


def test_image_tree_accepts_grey_and_opaque_rgba_but_not_transparency(small_tree):
    from PIL import Image

    some = sorted((small_tree / "train" / "cat").iterdir())
    Image.new("L", (32, 32), 7).save(some[0])
    Image.new("RGBA", (32, 32), (1, 2, 3, 255)).save(some[1])
    data = read_image_folders(small_tree)
    cat = data.train_images[data.train_labels == 3]
    assert (cat[0] == 7).all() and (cat[1] == [1, 2, 3]).all()
    Image.new("RGBA", (32, 32), (1, 2, 3, 128)).save(some[2])
    with pytest.raises(DataError, match=f"{some[2].name}: image has transparent pixels"):
        read_image_folders(small_tree)


def test_a_png_byte_that_decodes_to_other_pixels_is_refused(small_tree):
    # PIL's decoder does not check the image data's chunk CRCs: find a flipped bit that it
    # decodes to other pixels without complaint; the reader verifies the CRCs and refuses it.
    from PIL import Image

    path = sorted((small_tree / "test" / "cat").iterdir())[0]
    original = path.read_bytes()
    with Image.open(io.BytesIO(original)) as im:
        pixels = np.asarray(im.convert("RGB"))
    for pos in range(41, len(original)):
        flipped = bytearray(original)
        flipped[pos] ^= 0x10
        try:
            with Image.open(io.BytesIO(bytes(flipped))) as im:
                if not np.array_equal(np.asarray(im.convert("RGB")), pixels):
                    break
        except (OSError, SyntaxError, ValueError):
            continue
    else:
        pytest.fail("no flipped bit decodes to other pixels in this PNG")
    path.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=rf"{path.name}: not a readable image \(SyntaxError\)"):
        read_image_folders(small_tree)
