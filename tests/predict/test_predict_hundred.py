"""`cifarlab predict` with a 100-class model: top-k over the model's own class names, k up to
the class count, and a table whose columns stay aligned with CIFAR-100-length names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cifarlab.cli.main import main
from cifarlab.predict import load_trained_model, predict_paths, top_classes


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, sample_data):
    folder = tmp_path_factory.mktemp("pictures-100")
    for k in range(6):
        Image.fromarray(sample_data.test_images[k]).save(folder / f"p{k}.png")
    return folder


def test_top_k_names_come_from_the_100_classes(hundred_run, hundred_data, pictures):
    trained = load_trained_model(hundred_run)
    assert trained.classes == list(hundred_data.classes)
    results, errors = predict_paths(trained, [pictures], top_k=5)
    assert not errors and len(results) == 6
    for r in results:
        top = r["top"]
        assert len(top) == 5 and all(t["class"] == trained.classes[t["index"]] for t in top)
        probs = [t["probability"] for t in top]
        assert probs == sorted(probs, reverse=True)
    every, _ = predict_paths(trained, [pictures / "p0.png"], top_k=1000)  # beyond: all 100
    assert len(every[0]["top"]) == 100
    assert sum(t["probability"] for t in every[0]["top"]) == pytest.approx(1.0, abs=1e-4)


def _assert_aligned(lines: list[str], k: int) -> None:
    head, rows = lines[0], lines[1:]
    assert head.split() == ["file", *(f"top-{i}" for i in range(1, k + 1))]
    starts = [head.index(f"top-{i}") for i in range(1, k + 1)]
    for row in rows:
        # every cell starts under its header: "<class> <probability>%"
        cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        assert all(c.endswith("%") and len(c.split()) == 2 for c in cells), row


def test_the_table_stays_aligned_with_long_class_names(hundred_run, hundred_data, pictures, capsys):
    from cifarlab.cli.predict_cmd import _print_table

    assert main(["predict", str(hundred_run), str(pictures), "-k", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 7
    _assert_aligned(lines, 5)
    # the longest names on top, whatever this tiny model happens to predict
    classes = list(hundred_data.classes)
    by_length = sorted(range(100), key=lambda i: -len(classes[i]))
    results = []
    for shift in range(3):
        probs = np.full(100, 0.001)
        probs[by_length[shift : shift + 5]] = [0.3, 0.2, 0.1, 0.05, 0.01]
        results.append({"file": f"p{shift}.png", "top": top_classes(probs, classes, 5)})
    _print_table(results)
    lines = capsys.readouterr().out.strip().splitlines()
    assert "large_man-made_outdoor_automobile  30.0%" in lines[1]
    _assert_aligned(lines, 5)


def test_json_top_k_lists_every_class_when_asked_for_more(hundred_run, pictures, capsys):
    assert main(["predict", str(hundred_run), str(pictures / "p1.png"), "-k", "150", "--json"]) == 0
    (pred,) = json.loads(capsys.readouterr().out)["predictions"]
    assert sorted(t["index"] for t in pred["top"]) == list(np.arange(100))
