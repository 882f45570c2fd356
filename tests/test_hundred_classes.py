"""Evaluation at any class count: top-1 and top-5 accuracy in the evaluation sums, a run's
metrics.json and `cifarlab evaluate`; the most confused pairs; calibration at 100 classes;
a confusion figure readable at 100 classes. The 100-class data is the bundled sample
relabelled (tests/hundred_classes.py)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from cifarlab.calibration import N_BINS, calibration_metrics
from cifarlab.cli.main import main
from cifarlab.figures import draw_confusion
from cifarlab.inference import confused_pairs, evaluate_sums, finalize


def ranked_logits(n: int, classes: int, rank_of_label) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose label sits at rank ``rank_of_label(i)`` (0: the top) for image i."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, classes, (n,), generator=gen)
    logits = torch.empty(n, classes)
    for i in range(n):
        order = torch.randperm(classes, generator=gen)
        order = order[order != labels[i]]
        r = rank_of_label(i)
        ranked = torch.cat([order[:r], labels[i : i + 1], order[r:]])
        logits[i, ranked] = torch.linspace(10.0, 0.0, classes)
    return logits, labels


def test_top5_accuracy_counts_the_label_among_the_five_highest_logits():
    logits, labels = ranked_logits(300, 100, lambda i: i % 10)  # ranks 0..9 equally often
    names = [f"class_{k}" for k in range(100)]
    out = finalize(evaluate_sums(logits, labels, 100), names)
    assert out["accuracy"] == pytest.approx(0.1)
    assert out["top5_accuracy"] == pytest.approx(0.5) and out["top_k"] == 5
    # additive: the sums of two shards (two data-parallel ranks) give the same figures
    a, b = (
        evaluate_sums(logits[:137], labels[:137], 100),
        evaluate_sums(logits[137:], labels[137:], 100),
    )
    summed = finalize({k: a[k] + b[k] for k in a}, names)
    assert summed["top5_accuracy"] == out["top5_accuracy"]
    # fewer than five classes: top-(classes), every label is in it
    small, small_labels = ranked_logits(40, 3, lambda i: i % 3)
    out3 = finalize(evaluate_sums(small, small_labels, 3), ["a", "b", "c"])
    assert out3["top_k"] == 3 and out3["top5_accuracy"] == 1.0
    # a rank with no images adds zeros
    empty = evaluate_sums(torch.zeros(0, 100), torch.zeros(0, dtype=torch.long), 100)
    assert float(empty["correct_topk"]) == 0.0


def test_confused_pairs_are_the_largest_mistakes_with_their_share():
    confusion = [[8, 2, 0], [5, 0, 5], [0, 1, 9]]
    pairs = confused_pairs(confusion, ["a", "b", "c"], top=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("b", "a", 5),
        ("b", "c", 5),
        ("a", "b", 2),
    ]
    assert pairs[0]["share"] == 0.5 and pairs[2]["share"] == 0.2
    assert confused_pairs([[3, 0], [0, 4]], ["a", "b"]) == []  # no mistakes, no pairs


def test_calibration_works_unchanged_at_100_classes():
    logits, labels = ranked_logits(500, 100, lambda i: (i * 7) % 13)
    logits = logits * 0.3  # softer, so the confidences spread over the bins
    got = calibration_metrics(logits, labels)
    p = torch.softmax(logits.double(), dim=1).numpy()
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    right = pred == labels.numpy()
    bins = np.clip(np.ceil(conf * N_BINS).astype(int) - 1, 0, N_BINS - 1)
    ece = sum(abs(right[bins == b].sum() - conf[bins == b].sum()) for b in range(N_BINS)) / len(
        conf
    )
    onehot = np.eye(100)[labels.numpy()]
    assert got["ece"] == pytest.approx(ece, abs=1e-12)
    assert got["brier"] == pytest.approx(((p - onehot) ** 2).sum(axis=1).mean(), abs=1e-12)
    assert sum(got["reliability"]["count"]) == 500
    assert got["nll"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits.double(), labels)), abs=1e-12
    )


def test_the_confusion_figure_at_100_classes_has_no_cell_numbers_and_few_ticks():
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 4, (100, 100)) + np.eye(100, dtype=int) * 20
    names = [f"large_man-made_outdoor_thing_{k}" for k in range(100)]
    pairs = confused_pairs(confusion.tolist(), names)
    fig = draw_confusion(confusion.tolist(), names, pairs)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(k) for k in range(1, 11)]  # the circled pairs
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) <= 11 and labels[0] == "0" and "90" in labels
    # CIFAR-10's figure is as before: names on the axes, a count in every cell
    ten = draw_confusion(confusion[:10, :10].tolist(), names[:10])
    assert len(ten.axes[0].texts) == 100
    assert [t.get_text() for t in ten.axes[0].get_yticklabels()] == names[:10]


def test_a_100_class_run_reports_top5_and_the_most_confused_pairs(hundred_run):
    m = json.loads((hundred_run / "metrics.json").read_text())
    assert len(m["classes"]) == 100 and len(m["confusion"]) == 100 and m["top_k"] == 5
    assert m["test_accuracy"] <= m["test_top5_accuracy"] <= 1.0
    assert m["confused_pairs"] == confused_pairs(m["confusion"], m["classes"])
    first = m["confused_pairs"][0]
    i, j = m["classes"].index(first["true"]), m["classes"].index(first["predicted"])
    assert first["count"] == m["confusion"][i][j] and i != j
    assert first["share"] == pytest.approx(first["count"] / sum(m["confusion"][i]))


def test_evaluate_reports_top5_and_the_pairs_for_100_classes(hundred_run, hundred_data, tmp_path):
    import cifarlab
    from cifarlab.evaluate import check_evaluation

    m = json.loads((hundred_run / "metrics.json").read_text())
    result = cifarlab.evaluate(hundred_run, data=hundred_data, device="cpu", out_dir=tmp_path)
    assert result["top5_accuracy"] == m["test_top5_accuracy"]  # the same weights, same images
    assert result["confused_pairs"] == m["confused_pairs"]
    stored = json.loads((tmp_path / "evaluation.json").read_text())
    assert check_evaluation(stored, tmp_path)["top5_accuracy"] == result["top5_accuracy"]
    from cifarlab.stored import StoredValueError

    with pytest.raises(StoredValueError, match="top5_accuracy"):
        check_evaluation({**stored, "top5_accuracy": 1.5}, tmp_path)


def test_evaluate_prints_top5_an_aligned_table_and_the_pairs(
    hundred_run, hundred_data, monkeypatch, capsys
):
    evaluate_module = sys.modules["cifarlab.evaluate"]
    monkeypatch.setattr(
        evaluate_module,
        "evaluation_data",
        lambda trained, data=None, data_dir=None: (hundred_data, list(hundred_data.classes)),
    )
    assert main(["evaluate", str(hundred_run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("top-5 accuracy: ") for line in out)
    head = out.index(next(line for line in out if line.startswith("class ")))
    table = out[head : head + 101]
    assert len({line.index("%") for line in table[1:]}) == 1  # one column, long names too
    assert table[-1].startswith("spotted_truck ")
    start = out.index("most confused pairs (top 10):")
    rows = out[start + 2 : start + 12]
    assert all(" -> " in r and r.endswith("%") for r in rows)
    assert len({r.index(" -> ") for r in rows}) == 1
