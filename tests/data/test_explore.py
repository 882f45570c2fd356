"""overview() and write_figures() on the sample."""

from __future__ import annotations

from PIL import Image

from cifarlab.data.explore import draw_figures, overview, write_figures


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


def _extents(fig, texts):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def test_one_image_per_class_at_100_classes_is_a_10_by_10_grid_of_readable_titles(hundred_data):
    fig = draw_figures(hundred_data)["train_examples"]
    axes = fig.axes
    assert len(axes) == 100 and all(len(ax.images) == 1 for ax in axes)
    titles = [ax.title for ax in axes]
    assert [t.get_text().replace("\n", "") for t in titles] == list(hundred_data.classes)
    assert all(6 <= t.get_fontsize() < 10 for t in titles)
    # no title runs into its neighbour's cell: each fits the distance between columns
    widest = max(e.width for e in _extents(fig, titles))  # drawn: the layout is final
    pitch = axes[1].get_position().x0 - axes[0].get_position().x0
    assert widest < fig.get_figwidth() * fig.dpi * pitch
    assert fig.get_suptitle() == "Image folders train set: one image per class"


def test_class_counts_at_100_classes_are_named_horizontal_bars(hundred_data):
    fig = draw_figures(hundred_data)["test_class_counts"]
    (ax,) = fig.axes
    widths = [p.get_width() for p in ax.patches]
    assert widths == [5.0] * 100  # horizontal bars: the count is the bar's length
    labels = ax.get_yticklabels()
    assert [t.get_text() for t in labels] == [
        f"{k}  {name}" for k, name in enumerate(hundred_data.classes)
    ]
    boxes = sorted(_extents(fig, labels), key=lambda b: b.y0)
    assert all(a.y1 <= b.y0 + 0.5 for a, b in zip(boxes, boxes[1:], strict=False))  # no overlap
    assert all(t.get_fontsize() >= 6 for t in labels)
