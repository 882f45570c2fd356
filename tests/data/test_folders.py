"""A user's own image folders as a dataset (data.dataset = "folder", cifarlab.data.folders):
both layouts, every refusal as one line (exit 2 from the CLI), pictures of any mode and size
brought to image_size x image_size by predict's decoder, the class order, the seeded
stratified hold-out of a single tree, the decoded-array cache, and a real run that learns."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarlab.data.folders import NO_FOLDER, load_image_folders
from cifarlab.data.split import split_train_val
from cifarlab.errors import DataError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # 48x40: crop and resize both run
GREY = RNG.integers(0, 256, (40, 48), dtype=np.uint8)
BILINEAR = Image.Resampling.BILINEAR


def square(pixels: np.ndarray) -> np.ndarray:
    """The centre square of a 48x40 picture: columns 4..43."""
    return pixels[:, 4:44]


def expected(rgb_square: np.ndarray, size: int) -> np.ndarray:
    """The promised rule, done by hand: the square resized with PIL BILINEAR (none at 40)."""
    img = Image.fromarray(rgb_square)
    return np.asarray(img if size == 40 else img.resize((size, size), BILINEAR))


def solid(path: Path, value: int, size: tuple[int, int] = (12, 10)) -> Path:
    """A PNG of one grey value (its identity in the tests below)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0]), value, np.uint8)).save(path)
    return path


def two_classes(root: Path) -> Path:
    """root/train/{cat,dog}/ + root/test/{cat,dog}/, two pictures each."""
    for split in ("train", "test"):
        for k, cls in enumerate(("cat", "dog")):
            for i in range(2):
                solid(root / split / cls / f"{i}.png", 100 * k + i)
    return root


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height RGB and whose data holds almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


# --------------------------------------------------------------------------- refusals


def _not_a_picture_by_name(root: Path) -> Path:
    (root / "train" / "cat" / "notes.txt").write_text("taken on holiday")
    return root / "train" / "cat" / "notes.txt"


def _not_a_picture_by_content(root: Path) -> Path:
    (root / "test" / "dog" / "2.png").write_bytes(b"this is not a PNG at all")
    return root / "test" / "dog" / "2.png"


def _too_small(root: Path) -> Path:
    return solid(root / "train" / "dog" / "tiny.png", 7, size=(7, 30))  # MIN_SIDE is 8


def _over_the_pixel_budget(root: Path) -> Path:
    return header_only_png(root / "train" / "dog" / "huge.png", 10_000, 7_001)  # > 70 MP


def _a_fifo(root: Path) -> Path:
    import os

    os.mkfifo(root / "train" / "cat" / "pipe.png")  # must not block the reader
    return root / "train" / "cat" / "pipe.png"


def _empty_class(root: Path) -> Path:
    (root / "test" / "dog").mkdir(parents=True, exist_ok=True)
    for f in (root / "test" / "dog").iterdir():
        f.unlink()
    (root / "test" / "dog" / ".DS_Store").write_text("hidden: not a picture, not counted")
    return root / "test" / "dog"


def _one_class(root: Path) -> Path:
    for f in (root / "train" / "dog").iterdir():
        f.unlink()
    (root / "train" / "dog").rmdir()
    return root / "train"


def _no_folders(root: Path) -> Path:
    import shutil

    shutil.rmtree(root)
    root.mkdir()
    solid(root / "loose.png", 3)  # pictures with no class folder
    return root


def _test_classes_differ(root: Path) -> Path:
    (root / "test" / "dog").rename(root / "test" / "wolf")
    return root / "test"


def _only_train(root: Path) -> Path:
    import shutil

    shutil.rmtree(root / "test")
    return root


def _a_folder_in_a_class_folder(root: Path) -> Path:
    solid(root / "train" / "cat" / "more" / "9.png", 9)
    return root / "train" / "cat" / "more"


REFUSALS = {
    "not a picture by its name": (_not_a_picture_by_name, "not a picture"),
    "not a picture by its content": (_not_a_picture_by_content, "not a PNG, JPEG"),
    "smaller than MIN_SIDE": (_too_small, "need at least 8×8"),
    "over the pixel budget": (_over_the_pixel_budget, "10000×7001 pixels, more than the 70"),
    "a FIFO named like a picture": (_a_fifo, "not a regular file (FIFO)"),
    "a class folder with no picture": (_empty_class, "no picture in it"),
    "one class": (_one_class, "only one class folder (cat)"),
    "no class folders": (_no_folders, "no class folders"),
    "test classes differ": (_test_classes_differ, "only in test/: wolf; only in train/: dog"),
    "train/ without test/": (_only_train, "has train/ but no test/"),
    "a folder in a class folder": (_a_folder_in_a_class_folder, "a folder inside a class"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_one_line_naming_the_path(tmp_path, own_cache, case):
    make, says = REFUSALS[case]
    root = two_classes(tmp_path / "pets")
    assert load_image_folders(root).classes == ("cat", "dog")  # fine before the fault
    culprit = make(root)
    with pytest.raises(DataError) as err:
        load_image_folders(root)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{culprit}: "), msg
    assert says in msg, msg


@pytest.mark.parametrize("where", [None, "sample", "auto"])
def test_no_folder_named_is_refused(where):
    with pytest.raises(DataError) as err:
        load_image_folders(where)
    assert str(err.value) == NO_FOLDER


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match=f"^{tmp_path / 'nope'}: no such folder; point"):
        load_image_folders(tmp_path / "nope")


def test_the_cli_exits_2_with_one_line(tmp_path, helpers):
    root = two_classes(tmp_path / "pets")
    culprit = _not_a_picture_by_content(root)
    base = ["train", "--set", "data.dataset=folder", "--set", "train.epochs=1"]
    res = helpers.run_cli(*base, "--set", f"data.source={root}", "--out", str(tmp_path / "r1"))
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.splitlines() == [
        f"cifarlab: error: {culprit}: not a PNG, JPEG, WebP, GIF, BMP or TIFF image "
        "(cannot identify the file's format); replace it with a readable picture or remove it"
    ]
    res = helpers.run_cli(*base, "--out", str(tmp_path / "r2"))  # data.source left at auto
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.splitlines() == [f"cifarlab: error: {NO_FOLDER}"]


# --------------------------------------------------------------------------- decoding


def _write(root: Path, name: str, img: Image.Image, file: str = "0.png", **save) -> Path:
    for split in ("train", "test"):
        (root / split / name).mkdir(parents=True, exist_ok=True)
        img.save(root / split / name / file, **save)
    return root / "train" / name / file


@pytest.mark.parametrize("size", [24, 40, 56])
def test_every_mode_and_size_decodes_to_the_promised_pixels(tmp_path, own_cache, size):
    root = tmp_path / "pics"  # own_cache lives in tmp_path/cache
    palette = Image.fromarray(RGB).quantize(32)  # mode P
    alpha = np.where(RNG.random((40, 48)) < 0.3, 0, 255).astype(np.uint8)  # see-through or not
    wanted = {
        "a-grey": np.repeat(square(GREY)[..., None], 3, axis=2),
        "b-palette": square(np.asarray(palette.convert("RGB"))),
        "c-rgba": square(np.where(alpha[..., None] == 0, 255, RGB).astype(np.uint8)),
        "d-grey16": np.repeat(square(GREY)[..., None], 3, axis=2),  # v * 257 reads as v
    }
    _write(root, "a-grey", Image.fromarray(GREY, "L"))
    _write(root, "b-palette", palette)
    _write(root, "c-rgba", Image.fromarray(np.dstack([RGB, alpha]), "RGBA"))
    grey16 = Image.fromarray(GREY.astype(np.uint16) * 257)
    assert grey16.mode == "I;16"
    _write(root, "d-grey16", grey16)
    jpeg = _write(root, "e-jpeg", Image.fromarray(RGB), "0.jpg", quality=90)
    with Image.open(jpeg) as img:  # JPEG is lossy: what PIL decodes from the file
        wanted["e-jpeg"] = square(np.asarray(img.convert("RGB")))
    data = load_image_folders(root, image_size=size)
    assert data.classes == tuple(wanted) and data.dataset == "folder"
    assert data.train_images.shape == (5, size, size, 3)
    for label, name in enumerate(wanted):
        got = data.train_images[label]
        want = expected(wanted[name], size)
        np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(data.test_images[label], got)
    assert data.source == (
        f"image folders in {root} (train/ + test/, 5 classes, resized to {size}x{size})"
    )


def test_classes_are_the_folder_names_by_code_point(tmp_path, own_cache):
    root = tmp_path / "pics"  # own_cache lives in tmp_path/cache
    names = ["dog", "Zebra", "class10", "class2", "ant", "Émeu"]
    for value, name in enumerate(names):
        solid(root / name / "a.png", 10 * value)
        solid(root / name / "b.png", 10 * value)
    (root / ".thumbnails").mkdir()  # hidden folder: not a class
    solid(root / ".thumbnails" / "x.png", 255)
    (root / "README.txt").write_text("a plain file beside the class folders: ignored")
    data = load_image_folders(root, test_fraction=0.5)
    assert data.classes == ("Zebra", "ant", "class10", "class2", "dog", "Émeu")
    for images, labels in (
        (data.train_images, data.train_labels),
        (data.test_images, data.test_labels),
    ):
        for img, label in zip(images, labels, strict=True):
            assert img[0, 0, 0] == 10 * names.index(data.classes[label])


# --------------------------------------------------------------------------- single tree


def _numbered_tree(root: Path, sizes: dict[str, int]) -> dict[int, int]:
    """Each picture's grey value is its own number; returns number -> label (names sorted)."""
    label_of, n = {}, 0
    for label, (name, count) in enumerate(sorted(sizes.items())):
        for i in range(count):
            solid(root / name / f"{i:03d}.png", n)
            label_of[n] = label
            n += 1
    return label_of


def test_a_single_tree_holds_out_a_seeded_stratified_test_set(tmp_path, own_cache):
    root = tmp_path / "pics"  # own_cache lives in tmp_path/cache
    label_of = _numbered_tree(root, {"ant": 10, "bee": 15, "cow": 20})
    data = load_image_folders(root, split_seed=7, test_fraction=0.2, use_cache=False)
    assert np.bincount(data.test_labels).tolist() == [2, 3, 4]  # 20% of each class
    assert np.bincount(data.train_labels).tolist() == [8, 12, 16]
    test_ids = data.test_images[:, 0, 0, 0].astype(int)
    train_ids = data.train_images[:, 0, 0, 0].astype(int)
    assert sorted([*test_ids, *train_ids]) == list(range(45))  # disjoint, all used
    assert [label_of[i] for i in test_ids] == data.test_labels.tolist()
    # Exactly cifarlab.data.split's held-out part, in the files' order (class, then name).
    labels = np.array([label_of[i] for i in range(45)])
    _, held = split_train_val(labels, 0.2, 7)
    assert test_ids.tolist() == held.tolist()
    again = load_image_folders(root, split_seed=7, test_fraction=0.2, use_cache=False)
    np.testing.assert_array_equal(again.test_images, data.test_images)
    other = load_image_folders(root, split_seed=8, test_fraction=0.2, use_cache=False)
    assert other.test_images[:, 0, 0, 0].tolist() != test_ids.tolist()
    assert np.bincount(other.test_labels).tolist() == [2, 3, 4]
    assert "held out by split seed 7" in data.source and "3 classes" in data.source


def test_a_class_the_split_would_leave_without_training_images_is_refused(tmp_path, own_cache):
    root = tmp_path / "pics"  # own_cache lives in tmp_path/cache
    _numbered_tree(root, {"ant": 1, "bee": 3})
    with pytest.raises(DataError, match=f"^{root / 'ant'}: too few pictures"):
        load_image_folders(root, test_fraction=0.5)


# --------------------------------------------------------------------------- cache


def test_a_cache_hit_returns_equal_arrays_and_settings_are_keyed(tmp_path, own_cache):
    root = tmp_path / "pics"  # own_cache lives in tmp_path/cache
    _numbered_tree(root, {"ant": 6, "bee": 6})
    first = load_image_folders(root, image_size=16)
    hit = load_image_folders(root, image_size=16)
    assert not first.from_cache and hit.from_cache and hit.dataset == "folder"
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(hit, name), getattr(first, name))
    assert hit.classes == first.classes and hit.source.startswith(first.source)
    # Each setting that changes the arrays is part of the key: none of these is a hit.
    assert not load_image_folders(root, image_size=24).from_cache
    assert not load_image_folders(root, image_size=16, split_seed=1).from_cache
    assert not load_image_folders(root, image_size=16, test_fraction=0.5).from_cache
    load_image_folders(root, image_size=16)  # an entry is kept per folder: the last one made
    assert load_image_folders(root, image_size=16).from_cache
    (root / "cow").mkdir()  # a new, empty class folder is refused, not served from cache
    with pytest.raises(DataError, match="no picture in it"):
        load_image_folders(root, image_size=16)


# --------------------------------------------------------------------------- a real run


def _write_pets(sample, root: Path, classes: tuple[str, ...]) -> None:
    """The sample's images of ``classes`` as the user's own: upscaled to 48x40 (not square,
    not 32) and saved as grey PNG, palette PNG or grey JPEG, in turn by file number (so the
    file type says nothing about the class)."""
    for split in ("train", "test"):
        images, labels = getattr(sample, f"{split}_images"), getattr(sample, f"{split}_labels")
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in np.flatnonzero(labels == sample.classes.index(name)):
                img = Image.fromarray(images[i]).resize((48, 40), Image.Resampling.BICUBIC)
                if i % 3 == 0:
                    img.convert("L").save(root / split / name / f"{i:05d}.png")
                elif i % 3 == 1:
                    img.quantize(64).save(root / split / name / f"{i:05d}.png")
                else:
                    img.convert("L").save(root / split / name / f"{i:05d}.jpg", quality=90)


def test_a_run_on_image_folders_learns(tmp_path, own_cache, sample_data):
    """Four CIFAR-10 classes of the bundled sample (800 train / 200 test pictures) written as
    a user's folders of 48x40 grey and palette pictures, trained at 24x24 with fastnet
    (cpu85 at batch 100 for 8 epochs, no progressive resizing): chance is 25%; measured
    78.5-80.5% over seeds 0, 1 and 2 (about 25 s of training on one thread)."""
    from cifarlab.train.loop import train

    classes = ("airplane", "automobile", "frog", "horse")
    _write_pets(sample_data, tmp_path / "pets", classes)
    out = tmp_path / "run"
    metrics = train(
        "cpu85",
        out_dir=out,
        overrides={
            "data.dataset": "folder",
            "data.source": str(tmp_path / "pets"),
            "data.image_size": 24,
            "train.epochs": 8,
            "train.batch_size": 100,
            "train.resolutions": [],
            "train.resolution_milestones": [],
            "train.eval_points": 1,
            "system.threads": 1,
        },
        progress=False,
        log=lambda s: None,
    )
    assert metrics["test_accuracy"] > 0.6, metrics["test_accuracy"]
    assert (out / "metrics.json").is_file()


def test_a_size_the_model_cannot_take_is_refused_in_one_line(tmp_path, helpers):
    """seednet's head is built for 32x32: a folder dataset at 40 px is refused before training,
    naming data.image_size, not a shape error from deep inside the first step."""
    root = two_classes(tmp_path / "pets")
    base = ["train", "--set", "data.dataset=folder", "--set", f"data.source={root}"]
    base += [
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=2",
        "--set",
        "data.val_fraction=0",
    ]
    res = helpers.run_cli(*base, "--set", "data.image_size=40", "--out", str(tmp_path / "r40"))
    assert res.returncode == 2, res.stderr[-2000:]
    (line,) = res.stderr.splitlines()
    assert line.startswith("cifarlab: error: data.image_size: model seednet cannot take 40x40")
    res = helpers.run_cli(*base, "--set", "data.image_size=32", "--out", str(tmp_path / "r32"))
    assert res.returncode == 0, res.stderr[-2000:]
