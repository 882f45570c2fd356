"""`cifarlab data` end to end, in a fresh interpreter: output, figures, and bad input.

Every bad input must give exit status 2 and exactly one stderr line that names the
file and the problem -- never a traceback.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def test_data_on_the_sample_prints_counts_and_writes_figures(helpers, tmp_path):
    out = tmp_path / "figs"
    res = helpers.run_cli("data", "--data-dir", "sample", "--out", str(out))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("source: bundled sample (2,000 train / 500 test)")
    assert "train: 2,000 images, 200 per class" in lines
    assert "test: 500 images, 50 per class" in lines
    assert "images: 32×32×3 uint8" in lines
    assert any(line.split() == ["airplane", "200", "50"] for line in lines)
    pngs = sorted(p.name for p in out.iterdir())
    assert pngs == sorted(
        [
            "train_examples.png",
            "train_class_counts.png",
            "test_examples.png",
            "test_class_counts.png",
        ]
    )
    assert all(f"  {out / name}" in lines for name in pngs)


def test_no_figures_writes_nothing(helpers, tmp_path):
    res = helpers.run_cli(
        "data", "--data-dir", "sample", "--out", str(tmp_path / "f"), "--no-figures"
    )
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "f").exists() and "figures:" not in res.stdout


def _missing_file(folder: Path, tree: Path) -> tuple[Path, str, str]:
    (folder / "data_batch_3").unlink()
    return folder, "data_batch_3", "missing"


def _truncated(folder: Path, tree: Path) -> tuple[Path, str, str]:
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100_000])
    return folder, "data_batch_2", "truncated or not a CIFAR-10 batch"


def _rewrite(path: Path, changes: dict[bytes, object]) -> None:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch.update(changes)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _wrong_shape(folder: Path, tree: Path) -> tuple[Path, str, str]:
    _rewrite(folder / "data_batch_4", {b"data": np.zeros((400, 3000), np.uint8)})
    return folder, "data_batch_4", "data has shape (400, 3000), expected (n, 3072)"


def _label_out_of_range(folder: Path, tree: Path) -> tuple[Path, str, str]:
    _rewrite(folder / "test_batch", {b"labels": [10] + [0] * 499})
    return folder, "test_batch", "label 10 is out of range 0..9"


def _pixel_changed(folder: Path, tree: Path) -> tuple[Path, str, str]:
    # One pixel byte inside the pickle: still a valid batch, so only its md5 tells.
    path = folder / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[raw.find(pickle.loads(bytes(raw), encoding="bytes")[b"data"].tobytes()) + 99] ^= 1
    path.write_bytes(bytes(raw))
    return folder, "data_batch_3", "damaged or changed (md5 "


def _empty_folder(folder: Path, tree: Path) -> tuple[Path, str, str]:
    for f in (tree / "train" / "cat").iterdir():
        f.unlink()
    return tree, str(Path("train") / "cat"), "empty"


def _not_an_image(folder: Path, tree: Path) -> tuple[Path, str, str]:
    (tree / "test" / "frog" / "99999.png").write_text("this is not a PNG")
    return tree, "99999.png", "not a readable image"


def _wrong_size(folder: Path, tree: Path) -> tuple[Path, str, str]:
    Image.new("RGB", (31, 32)).save(tree / "train" / "ship" / "99998.png")
    return tree, "99998.png", "image is 31×32, expected 32×32"


@pytest.mark.parametrize(
    "damage",
    [
        _missing_file,
        _truncated,
        _wrong_shape,
        _label_out_of_range,
        _pixel_changed,
        _empty_folder,
        _not_an_image,
        _wrong_size,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_input_gives_one_line_and_status_2(damage, sample_copy, small_tree, helpers, tmp_path):
    data_dir, names, problem = damage(sample_copy, small_tree)
    res = helpers.run_cli(
        "data",
        "--data-dir",
        str(data_dir),
        "--no-figures",
        env={"CIFARLAB_CACHE": str(tmp_path / "c")},
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("cifarlab: error: ")
    assert names in lines[0] and problem in lines[0], lines[0]


def test_missing_data_dir_gives_one_line(helpers, tmp_path):
    res = helpers.run_cli("data", "--data-dir", str(tmp_path / "nope"), "--no-figures")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    [line] = res.stderr.splitlines()
    assert f"not found in {tmp_path / 'nope'}" in line and "--data-dir DIR" in line


def test_debug_shows_the_traceback(helpers, sample_copy):
    shutil.rmtree(sample_copy)
    res = helpers.run_cli("data", "--data-dir", str(sample_copy.parent), "--no-figures", "--debug")
    assert res.returncode != 0 and "Traceback" in res.stderr and "DataError" in res.stderr
