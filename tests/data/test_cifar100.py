"""CIFAR-100: the bundled sample, the three forms read alike, md5 and archive checks,
download, the decoded-array cache, and (where a full copy is found) the full set.

Everything is built inside the test from the real bundled CIFAR-100 sample (1,000 train /
300 test images); the bundled files themselves are never modified.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import pickletools
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cifarlab.data import cifar100 as c100
from cifarlab.data import download as dl
from cifarlab.data.datasets import DatasetSpec, load_dataset
from cifarlab.data.readers import LabelledImages
from cifarlab.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def assert_same(a: LabelledImages, b: LabelledImages) -> None:
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.classes == b.classes and a.dataset == b.dataset


def copy_sample100(dest: Path) -> Path:
    """A writable copy of the CIFAR-100 sample's cifar-100-python folder."""
    folder = dest / "cifar-100-python"
    shutil.copytree(c100.sample_dir(), folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def make_tarball100(folder: Path, dest: Path) -> Path:
    """Pack a cifar-100-python folder as the official archive does (the folder inside)."""
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    return dest


@pytest.fixture(scope="module")
def sample100() -> LabelledImages:
    return c100.load_cifar100("sample")


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(c100.ENV, raising=False)


# --- the bundled sample --------------------------------------------------------------------


def test_sample_has_100_fine_classes_10_and_3_images_each(sample100):
    assert sample100.is_sample and sample100.dataset == "cifar100"
    assert sample100.classes == c100.FINE_CLASSES and len(sample100.classes) == 100
    assert sample100.classes[:3] == ("apple", "aquarium_fish", "baby")
    assert sample100.train_images.shape == (1000, 32, 32, 3)
    assert sample100.test_images.shape == (300, 32, 32, 3)
    assert np.array_equal(np.bincount(sample100.train_labels, minlength=100), [10] * 100)
    assert np.array_equal(np.bincount(sample100.test_labels, minlength=100), [3] * 100)
    flat = sample100.train_images.reshape(1000, -1)
    assert len(np.unique(flat, axis=0)) == 1000  # real, distinct images
    assert sample100.source.startswith("bundled sample (1,000 train / 300 test) in ")


def test_coarse_labels_are_the_20_superclasses_through_the_table(sample100):
    coarse = c100.load_cifar100("sample", coarse=True)
    assert coarse.dataset == "cifar100-coarse" and coarse.is_sample
    assert len(coarse.classes) == 20
    assert coarse.classes[0] == "aquatic_mammals" and coarse.classes[-1] == "vehicles_2"
    assert np.array_equal(coarse.train_images, sample100.train_images)
    assert np.array_equal(np.bincount(coarse.train_labels, minlength=20), [50] * 20)
    assert np.array_equal(np.bincount(coarse.test_labels, minlength=20), [15] * 20)
    # Every superclass holds 5 fine classes, and each image's coarse label is its fine
    # class's superclass, both in the table and in the files' own coarse_labels.
    assert np.array_equal(np.bincount(c100.FINE_TO_COARSE, minlength=20), [5] * 20)
    for coarse_name, fines in c100.SUPERCLASSES.items():
        for fine in fines:
            c = c100.FINE_TO_COARSE[c100.FINE_CLASSES.index(fine)]
            assert c100.COARSE_CLASSES[c] == coarse_name
    assert np.array_equal(coarse.train_labels, c100.FINE_TO_COARSE[sample100.train_labels])
    for split in ("train", "test"):
        raw = pickle.loads((c100.sample_dir() / split).read_bytes(), encoding="bytes")
        fine = np.array(raw[b"fine_labels"])
        assert np.array_equal(np.array(raw[b"coarse_labels"]), c100.FINE_TO_COARSE[fine])
        assert np.array_equal(fine, getattr(sample100, f"{split}_labels"))


def test_sample_files_are_python2_style_pickles_in_the_official_layout():
    raw = (c100.sample_dir() / "train").read_bytes()
    assert raw[:2] == b"\x80\x02"
    globals_used = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert globals_used == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    batch = pickle.loads(raw, encoding="bytes")
    assert sorted(batch) == [
        b"batch_label",
        b"coarse_labels",
        b"data",
        b"filenames",
        b"fine_labels",
    ]
    assert batch[b"data"].shape == (1000, 3072) and batch[b"data"].dtype == np.uint8
    meta = pickle.loads((c100.sample_dir() / "meta").read_bytes(), encoding="bytes")
    assert len(meta[b"fine_label_names"]) == 100 and len(meta[b"coarse_label_names"]) == 20


def test_load_dataset_reads_the_sample_with_either_label_kind(sample100):
    fine = load_dataset(DatasetSpec("cifar100"), "sample")
    coarse = load_dataset(DatasetSpec("cifar100-coarse"), "sample")
    assert_same(fine, sample100)
    assert (fine.dataset, len(fine.classes)) == ("cifar100", 100)
    assert (coarse.dataset, len(coarse.classes)) == ("cifar100-coarse", 20)


# --- the three forms -----------------------------------------------------------------------


def test_official_archive_reads_equal_to_the_folder(tmp_path, sample100):
    folder = copy_sample100(tmp_path / "src")
    tarball = make_tarball100(folder, tmp_path / "cifar-100-python.tar.gz")
    data = c100.read_tarball(tarball)
    assert_same(data, c100.read_python_dir(folder))
    assert data.source == f"CIFAR-100 archive {tarball}"
    # Found by load_cifar100 in the folder that holds it, fine or coarse.
    holder = tmp_path / "holder"
    holder.mkdir()
    shutil.copy(tarball, holder)
    assert_same(c100.load_cifar100(holder, use_cache=False), data)
    assert_same(c100.load_cifar100(holder, coarse=True, use_cache=False), c100.as_coarse(data))


def _add_member(tarball: Path, info: tarfile.TarInfo, data: bytes = b"") -> None:
    """Rewrite ``tarball`` with one more member (gzip archives cannot be appended to)."""
    with tarfile.open(tarball, "r:gz") as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src]
    with tarfile.open(tarball, "w:gz") as out:
        for m, body in [*members, (info, data)]:
            out.addfile(m, io.BytesIO(body) if body is not None else None)


def test_tampered_archive_members_are_refused(tmp_path):
    folder = copy_sample100(tmp_path / "src")
    climbing = make_tarball100(folder, tmp_path / "a.tar.gz")
    info = tarfile.TarInfo("cifar-100-python/../../evil")
    info.size = 4
    _add_member(climbing, info, b"evil")
    with pytest.raises(DataError) as err:
        c100.read_tarball(climbing)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{climbing}:cifar-100-python/../../evil: unsafe path")
    assert msg.endswith("download cifar-100-python.tar.gz again")

    # The batch file itself as a link (to a file outside the archive) is refused too.
    linked = tmp_path / "b.tar.gz"
    with tarfile.open(linked, "w:gz") as tar:
        for name in ("meta", "test"):
            tar.add(folder / name, arcname=f"cifar-100-python/{name}")
        link = tarfile.TarInfo("cifar-100-python/train")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match=r"cifar-100-python/train: is a link to '/etc/passwd'"):
        c100.read_tarball(linked)


def test_changed_byte_in_the_compressed_archive_is_refused(tmp_path):
    folder = copy_sample100(tmp_path / "src")
    tarball = make_tarball100(folder, tmp_path / "cifar-100-python.tar.gz")
    raw = bytearray(tarball.read_bytes())
    raw[-8] ^= 0x01  # inside the gzip trailer's CRC: every member still decompresses
    tarball.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"not a readable tar archive .*download cifar-100"):
        c100.read_tarball(tarball)


def test_image_folders_read_equal_to_the_python_layout(tmp_path, sample100, helpers):
    tree = helpers.write_image_tree(sample100, tmp_path / "tree")
    data = c100.read_image_folders(tree)
    assert data.source.startswith("CIFAR-100 image folders in ")
    assert_same(data, c100.read_python_dir(c100.sample_dir()))
    coarse = c100.load_cifar100(tree, coarse=True, use_cache=False)
    assert np.array_equal(coarse.test_labels, c100.FINE_TO_COARSE[sample100.test_labels])


def test_image_folders_must_be_the_100_fine_classes(tmp_path, sample100, helpers):
    tree = helpers.write_image_tree(sample100, tmp_path / "tree", per_class=1)
    (tree / "train" / "apple").rename(tree / "train" / "apples")
    with pytest.raises(DataError, match=r"train/apples: not a CIFAR-100 fine class"):
        c100.read_image_folders(tree)
    shutil.rmtree(tree / "train" / "apples")
    with pytest.raises(DataError, match=r"train: found 99 class folders, expected 100"):
        c100.read_image_folders(tree)


# --- md5 sums ------------------------------------------------------------------------------


def test_changed_byte_in_a_batch_file_is_refused_by_its_md5(tmp_path):
    folder = copy_sample100(tmp_path)
    raw = bytearray((folder / "train").read_bytes())
    raw[-2000] ^= 0x01  # a pixel byte: the pickle stays valid, the image changes
    (folder / "train").write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        c100.read_python_dir(folder)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{folder / 'train'}: damaged or changed (md5 ")
    assert "not d03e613b7068cf2bac73b284083c3326 in the bundled CIFAR-100 sample" in msg
    assert msg.endswith(f"cd {folder} && md5sum meta train test > MD5SUMS")
    # The user vouches for the changed copy with an MD5SUMS: from then on it reads.
    (folder / "MD5SUMS").write_text(
        "".join(
            f"{hashlib.md5((folder / n).read_bytes()).hexdigest()}  {n}\n"
            for n in c100.REQUIRED_FILES
        )
    )
    assert c100.read_python_dir(folder).train_images.shape == (1000, 32, 32, 3)


def test_an_unknown_copy_is_named_as_no_known_cifar100_file(tmp_path):
    folder = copy_sample100(tmp_path)
    for name in ("train", "test", "meta"):
        obj = pickle.loads((folder / name).read_bytes(), encoding="bytes")
        (folder / name).write_bytes(pickle.dumps(obj, protocol=4))  # re-saved: new bytes
    with pytest.raises(DataError, match=r"is no known CIFAR-100 file's, nor are the other"):
        c100.read_python_dir(folder)


def test_official_sums_are_known():
    from cifarlab.data.checksums import KNOWN_COPIES_100, OFFICIAL_100

    assert OFFICIAL_100 in KNOWN_COPIES_100
    assert OFFICIAL_100.md5["train"] == "16019d7e3df5f24257cddd939b257f8d"
    assert OFFICIAL_100.md5["test"] == "f0ef6b0ae62326f3e7ffdfab6717acfc"
    assert OFFICIAL_100.md5["meta"] == "7973b15100ade9c7d40fb424638fde48"


def test_wrong_coarse_label_and_a_hostile_pickle_are_refused(tmp_path):
    folder = copy_sample100(tmp_path)
    batch = pickle.loads((folder / "test").read_bytes(), encoding="bytes")
    batch[b"coarse_labels"][5] = (batch[b"coarse_labels"][5] + 1) % 20
    (folder / "test").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"test: image 5 is a .* with coarse label"):
        c100.read_python_dir(folder)
    (folder / "test").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(DataError, match=r"refused to unpickle os.system \(a CIFAR-100 batch"):
        c100.read_python_dir(folder)


# --- where it looks, download, cache ---------------------------------------------------------


def test_a_named_location_without_cifar100_is_an_error_or_the_sample(tmp_path, no_env, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"^CIFAR-100 not found in .*empty .*CIFARLAB_CIFAR100=DIR"):
        c100.load_cifar100(empty)
    data = c100.load_cifar100(empty, fallback_to_sample=True)
    assert data.is_sample
    assert data.source.startswith(
        "bundled sample (1,000 train / 300 test): full CIFAR-100 not found"
    )
    monkeypatch.setenv(c100.ENV, str(empty))
    with pytest.raises(DataError, match=r"empty \(from CIFARLAB_CIFAR100\)"):
        c100.load_cifar100(download=False)
    monkeypatch.setenv(c100.ENV, str(copy_sample100(tmp_path / "env")))
    assert c100.load_cifar100(use_cache=False).source.startswith("CIFAR-100 python batches in ")


@pytest.fixture(scope="module")
def archive_url(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The sample as cifar-100-python.tar.gz behind a file:// URL; (url, md5)."""
    root = tmp_path_factory.mktemp("www")
    folder = copy_sample100(tmp_path_factory.mktemp("src"))
    tarball = make_tarball100(folder, root / "cifar-100-python.tar.gz")
    return tarball.as_uri(), hashlib.md5(tarball.read_bytes()).hexdigest()


def test_download_verifies_the_md5(archive_url, tmp_path):
    url, md5 = archive_url
    dest = tmp_path / "dest"
    path = dl.download_archive(
        dest, url=url, md5=md5, filename=c100.TARBALL_NAME, dataset="CIFAR-100", progress=False
    )
    assert path == dest / "cifar-100-python.tar.gz"
    assert [p.name for p in dest.iterdir()] == ["cifar-100-python.tar.gz"]
    bad = tmp_path / "bad"
    with pytest.raises(DataError, match=r"is corrupt \(md5 [0-9a-f]{32}, expected 0{32}\)"):
        dl.download_archive(
            bad,
            url=url,
            md5="0" * 32,
            filename=c100.TARBALL_NAME,
            dataset="CIFAR-100",
            progress=False,
        )
    assert list(bad.iterdir()) == []  # no file, not even a temporary one


def test_load_downloads_into_the_cache_then_reads_from_it(
    archive_url, own_cache, no_env, monkeypatch, sample100
):
    url, md5 = archive_url
    monkeypatch.setattr(dl, "CIFAR100_URL", url)
    monkeypatch.setattr(dl, "CIFAR100_MD5", md5)
    data = c100.load_cifar100(progress=False)
    assert (own_cache / "cifar100" / "cifar-100-python.tar.gz").is_file()
    assert not data.is_sample and not data.from_cache and "archive" in data.source
    assert np.array_equal(data.train_images, sample100.train_images)
    monkeypatch.setattr(dl, "CIFAR100_URL", "file:///nonexistent/none.tar.gz")
    again = c100.load_cifar100(progress=False)
    coarse = c100.load_cifar100(coarse=True, progress=False)
    assert again.from_cache and coarse.from_cache  # one decoded entry serves both kinds
    assert_same(again, data)
    assert_same(coarse, c100.as_coarse(data))


def test_failed_download_falls_back_to_the_sample_when_asked(
    archive_url, own_cache, no_env, monkeypatch
):
    url, _ = archive_url
    monkeypatch.setattr(dl, "CIFAR100_URL", url)
    monkeypatch.setattr(dl, "CIFAR100_MD5", "0" * 32)
    data = c100.load_cifar100(progress=False, fallback_to_sample=True)
    assert data.is_sample and "is corrupt" in data.source
    assert list((own_cache / "cifar100").iterdir()) == []
    with pytest.raises(DataError, match=r"^CIFAR-100 not found in .*is corrupt.*--data-dir DIR"):
        c100.load_cifar100(progress=False)
    with pytest.raises(DataError, match=r"downloading is off"):
        c100.load_cifar100(download=False)


# --- the full set --------------------------------------------------------------------------


def _full_copy() -> Path | None:
    """A full CIFAR-100 named by CIFARLAB_CIFAR100 (any of its forms), else None."""
    named = os.environ.get(c100.ENV)
    if named and c100.find_form(Path(named)) is not None:
        return Path(named)
    return None


@pytest.mark.slow
def test_full_cifar100_counts_and_the_sample_is_rebuilt_from_it(tmp_path):
    source = _full_copy()
    if source is None:
        pytest.skip("full CIFAR-100 not found: set CIFARLAB_CIFAR100 to run this test")
    full = c100.load_cifar100(source, use_cache=False)
    assert full.train_images.shape == (50_000, 32, 32, 3)
    assert full.test_images.shape == (10_000, 32, 32, 3)
    assert np.array_equal(np.bincount(full.train_labels, minlength=100), [500] * 100)
    assert np.array_equal(np.bincount(full.test_labels, minlength=100), [100] * 100)
    coarse = c100.as_coarse(full)
    assert np.array_equal(np.bincount(coarse.train_labels, minlength=20), [2500] * 20)
    # Every sample image is a full-set image of the same class.
    sample = c100.load_sample()
    for split in ("train", "test"):
        index = {
            row.tobytes(): lab
            for row, lab in zip(
                getattr(full, f"{split}_images").reshape(-1, 3072),
                getattr(full, f"{split}_labels"),
                strict=True,
            )
        }
        rows = getattr(sample, f"{split}_images").reshape(-1, 3072)
        labels = getattr(sample, f"{split}_labels")
        assert all(index.get(r.tobytes()) == lab for r, lab in zip(rows, labels, strict=True))
    # An image-folder copy rebuilds the bundled sample byte for byte.
    if c100.find_form(source)[0] == "images":
        script = ROOT / "scripts" / "make_sample.py"
        spec = importlib.util.spec_from_file_location("make_sample", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        built = module.make_sample100(source, tmp_path / "again")
        for name in c100.REQUIRED_FILES:
            assert (built / name).read_bytes() == (c100.sample_dir() / name).read_bytes(), name
