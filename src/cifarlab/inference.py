"""Inference: a model's logits on uint8 images, over test-time-augmentation views, and the
additive statistics (loss, top-1 and top-5 accuracy, confusion, calibration) summed over them.

What training's evaluation points (cifarlab.train) and the evaluation of a trained model
(cifarlab.evaluate, cifarlab.robustness, cifarlab.predict) share; no checkpoint, data set or
file is read here.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from cifarlab.calibration import calibration_from_sums, calibration_sums
from cifarlab.data.batches import normalize, to_float
from cifarlab.runtime import autocast, eval_batch_and_format


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate by (dy, dx) pixels with reflect padding (the TTA views)."""
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p), mode="reflect")
    h, w = x.shape[-2:]
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def tta_views(x: torch.Tensor, mode: str) -> list[tuple[float, torch.Tensor]]:
    """(weight, view) pairs whose weighted logits are averaged; the identity view first."""
    if mode == "none":
        return [(1.0, x)]
    flipped = x.flip(-1)
    if mode == "flip":
        return [(0.5, x), (0.5, flipped)]
    if mode == "flip-translate":
        views = [(0.25, x), (0.25, flipped)]
        for v in (x, flipped):
            views += [(0.125, _shift(v, -1, -1)), (0.125, _shift(v, 1, 1))]
        return views
    raise ValueError(f"unknown TTA mode {mode!r}")


def predict_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    **kwargs,
) -> torch.Tensor:
    """Logits (N, classes) in float32 for uint8 images (N, 3, H, W), in eval mode, averaged
    over the ``tta`` views (see ``predict_logits_and_plain`` for the keywords)."""
    return predict_logits_and_plain(model, images, mean, std, **kwargs)[0]


@torch.no_grad()  # not inference_mode: the layout change below must leave normal parameters
def predict_logits_and_plain(
    model: torch.nn.Module,
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    *,
    batch_size: int = 1000,
    tta: str = "none",
    amp_dtype: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits averaged over the ``tta`` views, and the identity view's own (the plain
    prediction), from one pass: a run that reports both pays for the identity view once.

    On the CPU the pass runs in channels_last, in batches of at most
    ``runtime.CPU_EVAL_BATCH`` (measured 4x faster); the model is put back as it was after.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size, memory_format = eval_batch_and_format(device, batch_size, memory_format)
    out, plain = [], []
    with _in_memory_format(model, memory_format):
        for start in range(0, images.shape[0], batch_size):
            xb = normalize(to_float(images[start : start + batch_size].to(device)), mean, std)
            logits = None
            for weight, view in tta_views(xb, tta):  # the identity view first
                with autocast(device, amp_dtype):
                    y = model(view.contiguous(memory_format=memory_format)).float()
                if logits is None:
                    plain.append(y)
                logits = weight * y if logits is None else logits + weight * y
            out.append(logits)
    model.train(was_training)
    if not out:
        return torch.zeros(0, 0), torch.zeros(0, 0)
    return torch.cat(out), torch.cat(plain)


@contextlib.contextmanager
def _in_memory_format(model: torch.nn.Module, fmt: torch.memory_format):
    """``model``'s 4-D weights in ``fmt`` for the block, then back in their own format (a
    change of layout only: the values, and so training after it, are untouched)."""
    convs = [p for p in model.parameters() if p.dim() == 4]
    if not convs or convs[0].is_contiguous(memory_format=fmt):
        yield
        return
    was_cl = convs[0].is_contiguous(memory_format=torch.channels_last)
    model.to(memory_format=fmt)
    try:
        yield
    finally:
        model.to(memory_format=torch.channels_last if was_cl else torch.contiguous_format)


TOP_K = 5  # the second accuracy reported: top-5, or top-(classes) with fewer classes
CONFUSED_PAIRS = 10  # the most confused (true, predicted) pairs a result lists


def top_k(num_classes: int) -> int:
    """The k of the top-k accuracy reported beside top-1: min(TOP_K, classes)."""
    return max(1, min(TOP_K, num_classes))


def evaluate_sums(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> dict[str, torch.Tensor]:
    """Additive statistics (so distributed ranks can sum them): loss sum, correct (top-1),
    correct_topk (the label among the ``top_k(num_classes)`` highest logits), count,
    confusion, and the calibration sums (cifarlab.calibration.calibration_sums)."""
    labels = labels.to(logits.device)
    pred = logits.argmax(dim=1)
    confusion = torch.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    if len(labels):
        top = logits.topk(top_k(num_classes), dim=1).indices
        in_top = (top == labels[:, None]).any(dim=1).sum().double()
    else:  # a rank with no images (or (0, 0) logits): nothing to rank
        in_top = torch.zeros((), dtype=torch.float64, device=logits.device)
    return {
        "loss_sum": F.cross_entropy(logits, labels, reduction="sum").double(),
        "correct": (pred == labels).sum().double(),
        "correct_topk": in_top,
        "count": torch.tensor(float(labels.numel()), dtype=torch.float64, device=logits.device),
        "confusion": confusion.reshape(num_classes, num_classes).double(),
        **calibration_sums(logits, labels),
    }


def confused_pairs(
    confusion: list[list[int]], classes: list[str] | tuple[str, ...], top: int = CONFUSED_PAIRS
) -> list[dict[str, Any]]:
    """The ``top`` most frequent mistakes of a confusion matrix (rows: true class, columns:
    predicted): ``{"true", "predicted", "count", "share"}`` where share is the fraction of
    the true class's images predicted as that class. Most images first; ties by the larger
    share, then by class order. Pairs never confused are left out."""
    pairs = []
    for i, row in enumerate(confusion):
        total = sum(row)
        for j, n in enumerate(row):
            if i != j and n > 0:
                pairs.append((-int(n), -n / total, i, j))
    pairs.sort()
    return [
        {"true": classes[i], "predicted": classes[j], "count": -n, "share": -share}
        for n, share, i, j in pairs[:top]
    ]


def finalize(sums: dict[str, torch.Tensor], classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Means, top-k accuracy, per-class accuracy, the confusion matrix, its most confused
    pairs and calibration (ece, nll, brier, reliability) from summed statistics.

    ``top5_accuracy``: the share of images whose label is among the model's ``top_k``
    (= min(5, classes)) highest logits; 1.0 with 5 classes or fewer.
    """
    count = max(float(sums["count"]), 1.0)
    confusion = sums["confusion"].cpu().long()
    per_class_total = confusion.sum(dim=1).clamp(min=1)
    per_class = (confusion.diag().double() / per_class_total.double()).tolist()
    matrix = confusion.tolist()
    return {
        "loss": float(sums["loss_sum"]) / count,
        "accuracy": float(sums["correct"]) / count,
        "top5_accuracy": float(sums["correct_topk"]) / count,
        "top_k": top_k(len(classes)),
        "count": int(sums["count"]),
        "per_class_accuracy": dict(zip(classes, per_class, strict=True)),
        "confusion": matrix,
        "confused_pairs": confused_pairs(matrix, classes),
        **calibration_from_sums(sums),
    }


def evaluate_model(model, images, labels, mean, std, classes, **kwargs) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix of ``model`` on uint8 images."""
    logits = predict_logits(model, images, mean, std, **kwargs)
    return finalize(evaluate_sums(logits, labels, len(classes)), classes)
