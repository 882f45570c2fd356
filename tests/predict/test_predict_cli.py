"""`cifarlab predict`: good pictures predicted as the model predicts the same pixels, each bad
file its own error line, exit status telling whether any failed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cifarlab.predict import (
    MIN_SIDE,
    ImageReadError,
    load_trained_model,
    predict_arrays,
    preprocess,
)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cifarlab", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, sample_data):
    """Three test images (PNG, lossless WebP, PNG in a subfolder), a text file named .png,
    a 1×1 picture, and a notes file that is not a picture suffix (ignored)."""
    folder = tmp_path_factory.mktemp("pictures")
    (folder / "sub").mkdir()
    Image.fromarray(sample_data.test_images[0]).save(folder / "a.png")
    Image.fromarray(sample_data.test_images[1]).save(folder / "b.webp", lossless=True)
    Image.fromarray(sample_data.test_images[2]).save(folder / "sub" / "c.png")
    (folder / "fake.png").write_text("this is a text file, not a picture\n")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(folder / "dot.png")
    (folder / "README.txt").write_text("not looked at\n")
    return folder, {"a.png": 0, "b.webp": 1, "sub/c.png": 2}


def test_predict_folder_with_good_and_bad_files(predict_run, mixed_folder, sample_data):
    folder, good = mixed_folder
    res = cli("predict", str(predict_run), str(folder), "--json", "--top-k", "3")
    assert res.returncode == 1, res.stderr  # some failed, the rest were predicted
    errors = res.stderr.strip().splitlines()
    assert len(errors) == 2, errors
    assert all(line.startswith("cifarlab: error: ") for line in errors)
    fake = next(line for line in errors if "fake.png" in line)
    dot = next(line for line in errors if "dot.png" in line)
    assert "not a PNG, JPEG, WebP, GIF, BMP or TIFF image" in fake
    assert "1×1 pixels" in dot and f"at least {MIN_SIDE}×{MIN_SIDE}" in dot

    out = json.loads(res.stdout)
    got = {p["file"]: p["top"] for p in out["predictions"]}
    assert sorted(got) == sorted(str(folder / name) for name in good)
    # The same pixels through the library give the same probabilities and order.
    trained = load_trained_model(predict_run)
    probs = predict_arrays(trained, sample_data.test_images[list(good.values())])
    for (name, _), p in zip(good.items(), probs, strict=True):
        top = got[str(folder / name)]
        assert len(top) == 3
        order = np.argsort(-p)[:3]
        assert [t["index"] for t in top] == order.tolist()
        assert [t["class"] for t in top] == [trained.classes[i] for i in order]
        assert [t["probability"] for t in top] == pytest.approx(p[order].tolist(), abs=1e-6)
    assert {e["file"] for e in out["errors"]} == {str(folder / "fake.png"), str(folder / "dot.png")}


def test_predict_table_and_exit_codes(predict_run, mixed_folder, capsys):
    # In-process (the same main() as `python -m cifarlab`): a subprocess per case costs
    # ~10 s of imports on a busy machine; test_predict_folder_... covers the real process.
    from cifarlab.cli.main import main

    folder, _ = mixed_folder
    code = main(
        ["predict", str(predict_run), str(folder / "a.png"), str(folder / "sub"), "-k", "2"]
    )
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].split() == ["file", "top-1", "top-2"]
    assert len(lines) == 3 and lines[1].startswith(str(folder / "a.png")) and "%" in lines[1]
    code = main(["predict", str(predict_run), str(folder / "fake.png"), str(folder / "gone.jpg")])
    out, err = capsys.readouterr()
    assert code == 2  # nothing could be predicted
    assert len(err.strip().splitlines()) == 2 and "gone.jpg: no such file" in err
    assert main(["predict", str(predict_run), str(folder), "--top-k", "0"]) == 2


def test_preprocess_centre_crops_then_resizes():
    # A wide picture: a grey square in the middle, red bands either side (cropped away).
    wide = np.zeros((96, 160, 3), np.uint8)
    wide[:, :, 0] = 255
    wide[:, 32:128] = 128
    out = preprocess(Image.fromarray(wide))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(out, np.full((32, 32, 3), 128, np.uint8))
    # A tall one, and a 32×32 one passes through unchanged.
    assert np.array_equal(preprocess(Image.fromarray(wide.transpose(1, 0, 2).copy())), out)
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(preprocess(Image.fromarray(exact)), exact)
    # Grey and transparent pictures become RGB (transparency on white).
    rgba = np.zeros((40, 40, 4), np.uint8)
    assert preprocess(Image.fromarray(rgba, "RGBA")).min() == 255
    assert preprocess(Image.fromarray(exact[:, :, 0], "L")).shape == (32, 32, 3)
    with pytest.raises(ImageReadError, match="7×20 pixels"):
        preprocess(Image.new("RGB", (7, 20)))
