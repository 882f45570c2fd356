"""Property-based fuzzing (hypothesis) of every reader cifarlab has.

Random bytes, truncations and byte mutations of real files must either read correctly
or raise the reader's own cifarlab error (DataError, CheckpointError, RecipeError) with
a one-line message: never another exception from deep inside pickle, tarfile, PIL,
zipfile, torch or tomllib. Examples are derandomized (the same ones on every run).

A damaged file that still reads is compared with what the undamaged file reads as: the
same content is handled (the damage hit bytes the reader ignores), different content is
counted lost ("read different data, undetected") and fails the test, since every format
here is verified by the reader: tarball: gzip CRC; checkpoint: zip CRC32s; PNG: chunk
CRCs; batch files: each file's md5 against a known copy's (a batch pickle carries no
checksum of its own; the fuzzed folder is a copy of the user's, vouched for by the MD5SUMS
written beside it, see docs/guide/data.md). The readers' folders are guarded too:
reading must create, remove or change nothing there.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import tarfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from relhelpers import same_content, tiny_python_dir

from cifarlab.data.readers import (
    REQUIRED_FILES,
    read_image_folders,
    read_python_dir,
    read_tarball,
)
from cifarlab.errors import CheckpointError, DataError, RecipeError
from cifarlab.recipe import load_recipe, parse_overrides
from cifarlab.rundir import load_checkpoint, save_checkpoint

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def damaged(original: bytes):
    """Random bytes, a truncation of ``original``, or ``original`` with bytes overwritten."""
    n = len(original)
    truncated = st.integers(0, max(n - 1, 0)).map(lambda k: original[:k])
    mutated = st.lists(
        st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8
    ).map(lambda edits: _apply(original, edits))
    return st.one_of(st.binary(max_size=4096), truncated, mutated)


def _apply(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for pos, value in edits:
        b[pos] = value
    return bytes(b)


def _check(exc: BaseException, kind: type, where: str) -> None:
    assert isinstance(exc, kind), f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert msg and "\n" not in msg, repr(msg)
    assert where in msg, msg


READ_BACK = "read back vs the undamaged file's content"


def _run(
    ledger,
    category: str,
    read,
    kind: type,
    where: str,
    label: str,
    original,
    guard,
) -> None:
    """One damaged file: refused with our own error, or read as exactly ``original``.

    Different content is counted lost, and fails the test: every reader verifies its
    format's checksums, so different content is a reader that let damage through."""
    with ledger.case(category, label, guard=[guard]) as case:
        try:
            got = read()
        except Exception as exc:  # anything else than our own error type fails _check
            _check(exc, kind, where)
            case.check(False, READ_BACK)  # refused: nothing different was read
            case.note = type(exc).__name__
        else:
            if case.check(not same_content(got, original), READ_BACK):
                fields = (
                    [
                        f.name
                        for f in dataclasses.fields(original)
                        if not same_content(getattr(got, f.name), getattr(original, f.name))
                    ]
                    if dataclasses.is_dataclass(original)
                    else []
                )
                case.note = "read different data, undetected" + (
                    f" ({', '.join(fields)} differ)" if fields else ""
                )
                raise AssertionError(f"{label}: {case.note} despite the format's checksums")
            else:
                case.note = "read the original content (the damage hit bytes the reader ignores)"


def test_fuzz_batch_files(tmp_path_factory, ledger):
    folder = tiny_python_dir(tmp_path_factory.mktemp("fuzz-batches"))
    originals = {f: (folder / f).read_bytes() for f in REQUIRED_FILES}
    content = read_python_dir(folder)

    @FUZZ
    @given(
        st.sampled_from(REQUIRED_FILES).flatmap(
            lambda f: st.tuples(st.just(f), damaged(originals[f]))
        )
    )
    def one(case):
        fname, data = case
        (folder / fname).write_bytes(data)
        try:
            _run(
                ledger,
                "fuzz_batch",
                lambda: read_python_dir(folder),
                DataError,
                fname,
                fname,
                content,
                folder.parent,
            )
        finally:
            (folder / fname).write_bytes(originals[fname])

    one()


def test_fuzz_tarball(tmp_path_factory, ledger):
    root = tmp_path_factory.mktemp("fuzz-tar")
    folder = tiny_python_dir(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    original = buf.getvalue()
    path = root / "cifar-10-python.tar.gz"
    path.write_bytes(original)
    content = read_tarball(path)

    @FUZZ
    @given(damaged(original))
    def one(data):
        path.write_bytes(data)
        _run(
            ledger,
            "fuzz_tarball",
            lambda: read_tarball(path),
            DataError,
            str(path),
            "tarball",
            content,
            root,
        )

    one()


def test_fuzz_image_folder(tmp_path_factory, sample_data, ledger):
    root = tmp_path_factory.mktemp("fuzz-images")
    files = []
    for split, images, labels in (
        ("train", sample_data.train_images, sample_data.train_labels),
        ("test", sample_data.test_images, sample_data.test_labels),
    ):
        for c, name in enumerate(sample_data.classes):
            (root / split / name).mkdir(parents=True)
            i = int((labels == c).nonzero()[0][0])
            path = root / split / name / "00000.png"
            Image.fromarray(images[i]).save(path)
            files.append(path)
    originals = {p: p.read_bytes() for p in files}
    content = read_image_folders(root)

    @FUZZ
    @given(st.sampled_from(files).flatmap(lambda p: st.tuples(st.just(p), damaged(originals[p]))))
    def one(case):
        path, data = case
        path.write_bytes(data)
        try:
            _run(
                ledger,
                "fuzz_image",
                lambda: read_image_folders(root),
                DataError,
                str(path),
                "png",
                content,
                root,
            )
        finally:
            path.write_bytes(originals[path])

    one()


def test_fuzz_checkpoint(tmp_path_factory, ledger):
    root = tmp_path_factory.mktemp("fuzz-ckpt")
    payload = {
        "model": {"fc.weight": torch.randn(4, 3), "fc.bias": torch.zeros(4)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
        "step": 12,
        "recipe": {"name": "tiny", "train": {"epochs": 1}},
        "history": {"step": [0, 12], "val_acc": [None, 0.5]},
    }
    save_checkpoint(root, payload, {"step": 12})
    original = (root / "checkpoint.pt").read_bytes()
    content = load_checkpoint(root / "checkpoint.pt")
    path = root / "fuzzed.pt"

    @FUZZ
    @given(damaged(original))
    def one(data):
        path.write_bytes(data)
        _run(
            ledger,
            "fuzz_checkpoint",
            lambda: load_checkpoint(path),
            CheckpointError,
            str(path),
            "checkpoint",
            content,
            root,
        )

    one()


def test_fuzz_recipe_toml_and_overrides(tmp_path_factory, ledger):
    from importlib import resources

    root = tmp_path_factory.mktemp("fuzz-recipe")
    original = (resources.files("cifarlab") / "recipes" / "seed-improved.toml").read_bytes()
    shutil.copy(
        resources.files("cifarlab") / "recipes" / "seed-baseline.toml", root / "seed-baseline.toml"
    )
    path = root / "fuzzed.toml"
    # Field names and TOML-ish fragments, so mutations often stay parseable and reach validation.
    keys = st.sampled_from(
        [
            "optim.lr",
            "train.epochs",
            "train.batch_size",
            "model.name",
            "augment.flip",
            "seed",
            "data.mean",
            "schedule.name",
            "train",
            "optim",
            "nope",
            "optim.lr.x",
            "",
        ]
    )
    values = st.one_of(
        st.sampled_from(
            ["-1", "0", "1e9", "nan", "inf", "true", '"x"', "[1, 2]", "{a = 1}", "", "[", '"']
        ),
        st.text(max_size=12),
    )
    override = st.tuples(keys, st.sampled_from(["=", "", "=="]), values).map("".join)

    @FUZZ
    @given(
        st.one_of(
            damaged(original),
            st.text(max_size=300).map(str.encode),
        ),
        st.lists(override, max_size=3),
    )
    def one(data, overrides):
        path.write_bytes(data)

        def read():
            return load_recipe(path, parse_overrides(overrides))

        with ledger.case("fuzz_recipe", "recipe", guard=[root]) as case:
            try:
                read()
                case.note = "valid recipe"
            except Exception as exc:
                # A recipe error names the file or the field (or the --set item).
                assert isinstance(exc, RecipeError), f"{type(exc).__name__}: {exc}"
                msg = str(exc)
                assert msg and "\n" not in msg, repr(msg)
                case.note = "RecipeError"

    one()


def test_a_tarball_whose_pixels_changed_is_refused_by_its_gzip_crc(tmp_path):
    """The fuzz's finding, made exact: a .tar.gz whose member bytes changed but whose deflate
    stream stays valid (here: the changed tar recompressed, the original CRC32 and length
    kept) decompresses without error; only the CRC after the end-of-archive marker tells."""
    import gzip
    import pickle

    folder = tiny_python_dir(tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    tar_bytes = buf.getvalue()
    original = gzip.compress(tar_bytes, mtime=0)
    with open(folder / "data_batch_1", "rb") as f:
        pixels = pickle.load(f, encoding="bytes")[b"data"].tobytes()
    # Protocol 2 stores the pixels as latin-1 text: a run of values under 128 is found as is.
    start = next(i for i in range(len(pixels)) if max(pixels[i : i + 32]) < 128)
    at = tar_bytes.index(pixels[start : start + 32]) + 16  # a pixel byte of data_batch_1
    changed = bytearray(tar_bytes)
    changed[at] ^= 0x01  # still under 128: the pickle stays valid
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(gzip.compress(bytes(changed), mtime=0)[:-8] + original[-8:])
    with pytest.raises(
        DataError, match=r"cifar-10-python\.tar\.gz: not a readable tar archive .*CRC"
    ):
        read_tarball(path)
    path.write_bytes(original)
    assert same_content(read_tarball(path), read_tarball(path))  # the undamaged one reads
