"""Evaluation: accuracy, loss, per-class accuracy, the confusion matrix and calibration.

``evaluate_model`` is the loop's own validation/test pass (eval mode, no grad,
whole batches, optional test-time augmentation); ``evaluate`` is the public
entry point that starts from a checkpoint, as ``cifarlab evaluate`` does. Every evaluation
reports calibration too (ECE, NLL, Brier and the reliability bins: cifarlab.calibration);
``evaluate(calibrate=True)`` also fits a temperature on the run's validation split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cifarlab.atomic import write_json
from cifarlab.calibration import (
    T_MAX,
    T_MIN,
    CalibrationError,
    apply_temperature,
    calibration_from_sums,
    calibration_metrics,
    calibration_sums,
    fit_temperature,
    stored_temperature,
    temperature_path,
    write_temperature,
)
from cifarlab.callable_module import make_callable
from cifarlab.data.batches import normalize, to_float, to_uint8_tensor
from cifarlab.data.tensors import load_data_for, prepare_tensors
from cifarlab.figures import plot_confusion, plot_reliability
from cifarlab.models import create_model
from cifarlab.paths import output_dir
from cifarlab.recipe import recipe_from_dict
from cifarlab.rundir import EvaluationDir, load_checkpoint
from cifarlab.runtime import autocast, eval_batch_and_format, resolve_device
from cifarlab.stored import field, mapping


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


def evaluate_sums(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> dict[str, torch.Tensor]:
    """Additive statistics (so distributed ranks can sum them): loss sum, correct, count,
    confusion, and the calibration sums (cifarlab.calibration.calibration_sums)."""
    labels = labels.to(logits.device)
    pred = logits.argmax(dim=1)
    confusion = torch.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    return {
        "loss_sum": F.cross_entropy(logits, labels, reduction="sum").double(),
        "correct": (pred == labels).sum().double(),
        "count": torch.tensor(float(labels.numel()), dtype=torch.float64, device=logits.device),
        "confusion": confusion.reshape(num_classes, num_classes).double(),
        **calibration_sums(logits, labels),
    }


def finalize(sums: dict[str, torch.Tensor], classes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Means, per-class accuracy, the confusion matrix and calibration (ece, nll, brier,
    reliability) from summed statistics."""
    count = max(float(sums["count"]), 1.0)
    confusion = sums["confusion"].cpu().long()
    per_class_total = confusion.sum(dim=1).clamp(min=1)
    per_class = (confusion.diag().double() / per_class_total.double()).tolist()
    return {
        "loss": float(sums["loss_sum"]) / count,
        "accuracy": float(sums["correct"]) / count,
        "count": int(sums["count"]),
        "per_class_accuracy": dict(zip(classes, per_class, strict=True)),
        "confusion": confusion.tolist(),
        **calibration_from_sums(sums),
    }


def evaluate_model(model, images, labels, mean, std, classes, **kwargs) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix of ``model`` on uint8 images."""
    logits = predict_logits(model, images, mean, std, **kwargs)
    return finalize(evaluate_sums(logits, labels, len(classes)), classes)


@dataclass
class Evaluand:
    """A checkpoint's model on its device, in eval-ready form, with the data and the
    normalisation it was trained with: what an evaluation starts from."""

    model: torch.nn.Module
    payload: dict[str, Any]
    recipe: Any
    data: Any
    classes: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    device: torch.device


def load_for_evaluation(
    checkpoint: str | Path,
    *,
    data=None,
    data_dir: str | None = None,
    device: str = "auto",
    check: Callable[[Any], None] | None = None,
) -> Evaluand:
    """Load a checkpoint (a file or a run directory), its model and its data: ``data``, else
    ``data_dir``, else what the run recorded (a run trained on the bundled sample is reopened
    on it, without searching or touching the network), else the recipe's rule (``auto`` falls
    back to the sample). ``check(recipe)`` runs before any data is read (evaluate --calibrate
    refuses a run without a validation split there)."""
    payload = load_checkpoint(checkpoint)
    recipe = recipe_from_dict(payload["recipe"], stored=True)
    if check is not None:
        check(recipe)
    dev = resolve_device(device)
    if data is None:
        data = load_data_for(
            recipe.data.source, data_dir, log=lambda line: None, run_data=payload.get("data")
        )
    classes = list(payload.get("classes") or data.classes)
    model = create_model(recipe.model.name, num_classes=len(classes), **recipe.model.options)
    model.load_state_dict(payload["model"])
    model.to(dev)
    return Evaluand(
        model=model,
        payload=payload,
        recipe=recipe,
        data=data,
        classes=classes,
        mean=torch.tensor(recipe.data.mean, device=dev),
        std=torch.tensor(recipe.data.std, device=dev),
        device=dev,
    )


def evaluate(
    checkpoint: str | Path,
    *,
    data=None,
    data_dir: str | None = None,
    tta: str = "none",
    device: str = "auto",
    out_dir: str | Path | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    calibrate: bool = False,
) -> dict[str, Any]:
    """Test accuracy of a checkpoint (a file or a run directory), with its per-class table,
    confusion matrix and calibration (ECE, NLL, Brier, reliability bins).

    Checkpoint and data as :func:`load_for_evaluation` finds them. With ``out_dir``,
    evaluation.json, confusion.png and reliability.png are written there — ``cifarlab
    evaluate`` passes RUN/evaluation/<tta>/, so the training's own files are never replaced. ``log`` sees the
    result before anything is written, so a failed write never hides it.

    ``calibrate``: fit a temperature on the run's validation split
    (:func:`fit_validation_temperature`), report the test set's calibration before and after
    it (``temperature``, ``calibrated``) and store it beside the checkpoint as
    temperature.json, last. A run without a validation split (data.val_fraction 0) is refused
    before anything is read or written. Without ``calibrate``, a temperature.json fitted for
    this checkpoint's step is applied to report ``calibrated`` too (``temperature`` then has
    ``"stored": true``); one fitted for another step is not, and ``temperature_note`` says so.
    Neither applies under TTA: the temperature is fitted for plain logits.
    """
    ev = load_for_evaluation(
        checkpoint,
        data=data,
        data_dir=data_dir,
        device=device,
        check=(lambda recipe: check_calibratable(recipe, tta, checkpoint)) if calibrate else None,
    )
    model, payload, recipe, data = ev.model, ev.payload, ev.recipe, ev.data
    classes, dev = ev.classes, ev.device
    images = to_uint8_tensor(data.test_images, dev)
    labels = torch.from_numpy(data.test_labels)
    logits = predict_logits(
        model, images, ev.mean, ev.std, tta=tta, batch_size=recipe.eval.batch_size
    )
    result = finalize(evaluate_sums(logits, labels, len(classes)), classes)
    result.update(
        {"tta": tta, "checkpoint": str(checkpoint), "data": data.source, "step": payload["step"]}
    )
    record = None
    temperature = count = None
    if calibrate:
        temperature, record = fit_validation_temperature(model, data, recipe, payload, dev)
        count = record["validation_count"]
    elif tta == "none":
        # A temperature fitted earlier for this checkpoint (what predict and export apply):
        # report the calibrated numbers too, so a later evaluation (e.g. --corruptions) does
        # not write an evaluation.json that has lost them. A stale one is named, not applied.
        stored, note = stored_temperature(checkpoint, payload["step"])
        if stored is not None:
            temperature, count = float(stored["temperature"]), stored.get("validation_count")
        elif note is not None:
            result["temperature_note"] = note
    if temperature is not None:
        result["temperature"] = {
            "value": temperature,
            "fitted_on": "validation",
            "validation_count": count,
            "file": str(temperature_path(checkpoint)),
            **({} if calibrate else {"stored": True}),
        }
        result["calibrated"] = {
            **calibration_metrics(apply_temperature(logits, temperature), labels),
            "accuracy": result["accuracy"],  # a temperature never changes the argmax
        }
    if log is not None:
        log(result)
    if out_dir is not None:
        out = EvaluationDir(output_dir(out_dir, "evaluation folder", create=True))
        plot_confusion(result["confusion"], classes, out.confusion_figure_path)
        after = result.get("calibrated") or {}
        plot_reliability(
            result["reliability"],
            out.reliability_figure_path,
            ece=result["ece"],
            calibrated=after.get("reliability"),
            calibrated_ece=after.get("ece"),
            title=f"test set, step {payload['step']}",
        )
        write_json(out.evaluation_path, result)
    if record is not None:
        write_temperature(checkpoint, **record)
    return result


def check_evaluation(record: Any, path: Path) -> dict[str, Any]:
    """An evaluation.json's numbers, as the report reads them back: fractions in [0, 1],
    losses >= 0, Brier in [0, 2], the step whole, the temperature in its range; else
    StoredValueError naming the file and field (cifarlab.stored)."""
    record = mapping(record, path)
    field(record, "step", path, low=0, integer=True)
    field(record, "count", path, low=0, integer=True)
    blocks = [(record, "")]
    if record.get("calibrated") is not None:
        blocks.append((mapping(record["calibrated"], path, "calibrated"), "calibrated."))
    for block, prefix in blocks:
        for key in ("accuracy", "ece"):
            field(block, key, path, prefix, low=0.0, high=1.0)
        for key in ("loss", "nll"):
            field(block, key, path, prefix, low=0.0)
        field(block, "brier", path, prefix, low=0.0, high=2.0)
    if record.get("temperature") is not None:
        temperature = mapping(record["temperature"], path, "temperature")
        field(temperature, "value", path, "temperature.", low=T_MIN, high=T_MAX)
    return record


def check_calibratable(recipe, tta: str, checkpoint: str | Path) -> None:
    """A temperature needs a validation split, and is fitted for plain logits (what predict
    and export use); else CalibrationError, before anything is read or written."""
    if not recipe.data.val_fraction:
        raise CalibrationError(
            f"{checkpoint}: --calibrate fits the temperature on the validation split, and this "
            f"run has none (data.val_fraction = {recipe.data.val_fraction}); train with "
            f"--set data.val_fraction=0.1 to calibrate"
        )
    if tta != "none":
        raise CalibrationError(
            f"--calibrate fits the temperature for plain logits (what predict and export use); "
            f"run it without --tta {tta}"
        )


def fit_validation_temperature(
    model: torch.nn.Module, data, recipe, payload: dict[str, Any], dev: torch.device
) -> tuple[float, dict[str, Any]]:
    """The temperature that minimises NLL on the run's own validation split, and the record
    write_temperature stores with it.

    The split is the training's: cifarlab.data.tensors.prepare_tensors with the recipe's
    data.val_fraction and data.split_seed, on data whose fingerprint matches the checkpoint's
    (other data would put training images, or none of the same ones, in the split).
    """
    tensors = prepare_tensors(
        data,
        val_fraction=recipe.data.val_fraction,
        split_seed=recipe.data.split_seed,
        mean=recipe.data.mean,
        std=recipe.data.std,
        device=torch.device("cpu"),
    )
    recorded = (payload.get("data") or {}).get("fingerprint")
    if recorded not in (None, tensors.fingerprint):
        raise CalibrationError(
            f"{data.source}: not the data this checkpoint was trained on (its validation "
            f"split would differ); point --data-dir at the run's data "
            f"({payload['data'].get('source')})"
        )
    logits = predict_logits(
        model,
        tensors.val_x.to(dev),
        tensors.mean.to(dev),
        tensors.std.to(dev),
        batch_size=recipe.eval.batch_size,
    )
    labels = tensors.val_y
    temperature = fit_temperature(logits, labels)
    before = calibration_metrics(logits, labels)
    after = calibration_metrics(apply_temperature(logits, temperature), labels)
    return temperature, {
        "temperature": temperature,
        "step": int(payload["step"]),
        "fitted_on": "validation",
        "validation_count": len(labels),
        "val_fraction": recipe.data.val_fraction,
        "split_seed": recipe.data.split_seed,
        "data_fingerprint": tensors.fingerprint,
        "validation": {
            "nll_before": before["nll"],
            "nll_after": after["nll"],
            "ece_before": before["ece"],
            "ece_after": after["ece"],
        },
    }


# ``cifarlab.evaluate(checkpoint, ...)``: the module is callable, so the public name works
# whatever was imported first (cifarlab.callable_module says why).
make_callable(__name__, "cifarlab.evaluate:evaluate")
