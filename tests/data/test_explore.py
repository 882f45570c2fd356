"""overview() and write_figures() on the sample."""

from __future__ import annotations

from PIL import Image

from cifarlab.data.explore import overview, write_figures


def test_describe_counts_per_split_and_class(sample_data):
    info = overview(sample_data)
    assert info["train"]["images"] == 2000 and info["test"]["images"] == 500
    assert info["train"]["per_class"] == dict.fromkeys(sample_data.classes, 200)
    assert info["test"]["per_class"] == dict.fromkeys(sample_data.classes, 50)
    assert info["image_shape"] == (32, 32, 3) and info["dtype"] == "uint8"
    assert info["source"] == sample_data.source and info["is_sample"]


def test_write_figures_writes_four_pngs(sample_data, tmp_path):
    paths = write_figures(sample_data, tmp_path / "figs")
    assert [p.name for p in paths] == [
        "train_examples.png",
        "train_class_counts.png",
        "test_examples.png",
        "test_class_counts.png",
    ]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300
