"""Evaluation: top-1 and top-5 accuracy, loss, per-class accuracy, the confusion matrix and its
most confused pairs, and calibration.

``evaluate`` is the public entry point that starts from a checkpoint (read by
cifarlab.trained), as ``cifarlab evaluate`` does; ``evaluate_model``, the loop's own
validation/test pass (eval mode, no grad, whole batches, optional test-time augmentation),
lives in cifarlab.inference and keeps its public name here. Every evaluation
reports calibration too (ECE, NLL, Brier and the reliability bins: cifarlab.calibration);
``evaluate(calibrate=True)`` also fits a temperature on the run's validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cifarlab.atomic import write_json
from cifarlab.calibration import (
    T_MAX,
    T_MIN,
    CalibrationError,
    apply_temperature,
    calibration_metrics,
    fit_temperature,
    temperature_path,
    write_temperature,
)
from cifarlab.callable_module import make_callable
from cifarlab.data.batches import to_uint8_tensor
from cifarlab.figures import plot_confusion, plot_reliability
from cifarlab.inference import evaluate_model, evaluate_sums, finalize
from cifarlab.paths import output_dir
from cifarlab.rundir import EvaluationDir
from cifarlab.stored import field, mapping
from cifarlab.trained import TrainedModel, evaluation_data, load_trained_model, run_tensors

__all__ = [
    "check_calibratable",
    "check_evaluation",
    "evaluate",
    "evaluate_model",  # the public name of the loop's own pass (cifarlab.inference)
    "fit_validation_temperature",
]


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
    """Test accuracy of a checkpoint (a file or a run directory), top-1 and top-5
    (``top5_accuracy``: top-``top_k``, k = min(5, classes)), with its per-class table,
    confusion matrix, most confused pairs (``confused_pairs``: true -> predicted, images,
    share of the true class; cifarlab.inference.confused_pairs) and calibration (ECE, NLL,
    Brier, reliability bins).

    The checkpoint is read by :func:`cifarlab.trained.load_trained_model` (one line for any
    bad one) and the data found by :func:`cifarlab.trained.evaluation_data`. With ``out_dir``,
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
    stored = tta == "none" and not calibrate  # a stored temperature is for plain logits
    trained = load_trained_model(checkpoint, device=device, calibrated=stored)
    if calibrate:  # before any data is read
        check_calibratable(trained.recipe, tta, checkpoint)
    data, classes = evaluation_data(trained, data=data, data_dir=data_dir)
    labels = torch.from_numpy(data.test_labels)
    logits = trained.logits(
        to_uint8_tensor(data.test_images, trained.device),
        tta=tta,
        batch_size=trained.recipe.eval.batch_size,
    )
    result = finalize(evaluate_sums(logits, labels, len(classes)), classes)
    result.update(
        {"tta": tta, "checkpoint": str(checkpoint), "data": data.source, "step": trained.step}
    )
    record = None
    temperature = count = None
    if calibrate:
        temperature, record = fit_validation_temperature(trained, data)
        count = record["validation_count"]
    elif trained.temperature_record is not None:
        # A temperature fitted earlier for this checkpoint (what predict and export apply):
        # report the calibrated numbers too, so a later evaluation (e.g. --corruptions) does
        # not write an evaluation.json that has lost them. A stale one is named, not applied.
        temperature = trained.temperature
        count = trained.temperature_record.get("validation_count")
    elif trained.temperature_note is not None:
        result["temperature_note"] = trained.temperature_note
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
        plot_confusion(
            result["confusion"], classes, out.confusion_figure_path, result["confused_pairs"]
        )
        after = result.get("calibrated") or {}
        plot_reliability(
            result["reliability"],
            out.reliability_figure_path,
            ece=result["ece"],
            calibrated=after.get("reliability"),
            calibrated_ece=after.get("ece"),
            title=f"test set, step {trained.step}",
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
    field(record, "top5_accuracy", path, low=0.0, high=1.0)  # absent before top-5 was reported
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


def fit_validation_temperature(trained: TrainedModel, data) -> tuple[float, dict[str, Any]]:
    """The temperature that minimises NLL on the run's own validation split, and the record
    write_temperature stores with it.

    The split is the training's (cifarlab.trained.run_tensors: the recipe's data.val_fraction
    and data.split_seed), on data whose fingerprint matches the checkpoint's (other data
    would put training images, or none of the same ones, in the split).
    """
    recipe = trained.recipe
    tensors = run_tensors(recipe, data, torch.device("cpu"))
    recorded = (trained.run_data or {}).get("fingerprint")
    if recorded not in (None, tensors.fingerprint):
        raise CalibrationError(
            f"{data.source}: not the data this checkpoint was trained on (its validation "
            f"split would differ); point --data-dir at the run's data "
            f"({trained.run_data.get('source')})"
        )
    logits = trained.logits(tensors.val_x, batch_size=recipe.eval.batch_size)
    labels = tensors.val_y
    temperature = fit_temperature(logits, labels)
    before = calibration_metrics(logits, labels)
    after = calibration_metrics(apply_temperature(logits, temperature), labels)
    return temperature, {
        "temperature": temperature,
        "step": trained.step,
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
