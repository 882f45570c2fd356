"""Calibration: how far a model's confidence can be trusted, and temperature scaling.

Definitions (every function takes logits (N, K) and integer labels (N,); log-probabilities
are valid logits, since softmax(log p) = p):

- **ECE**, top-label expected calibration error with ``N_BINS`` = 15 equal-width confidence
  bins (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, eq. 3)::

      ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|

  where the confidence of an image is its top softmax probability, bin b holds the images
  whose confidence lies in (b/15, (b+1)/15], acc(B_b) is the fraction of them whose top
  class is the label and conf(B_b) their mean confidence. 0 is perfect; an always-90%-sure
  model that is right 60% of the time has ECE 0.3.
- **NLL**, negative log-likelihood: the mean cross-entropy of the labels, in nats.
- **Brier score**, the original multiclass form (Brier 1950): the mean over images of
  sum_k (p_k - onehot_k)^2, between 0 (certain and right) and 2 (certain and wrong). Some
  libraries divide it by K; we do not.
- **Reliability diagram**: per bin, its count, accuracy and mean confidence.

Every statistic is built from additive sums (:func:`calibration_sums`), so data-parallel
ranks can all-reduce them as they do accuracy (cifarlab.inference.evaluate_sums).

**Temperature scaling** (Guo et al. 2017, sec. 4.2): one scalar T > 0 divides every logit;
the argmax, and so the accuracy, is unchanged, while the probabilities become softer (T > 1)
or sharper (T < 1). :func:`fit_temperature` chooses T to minimise NLL on held-out logits
(the run's validation split: ``cifarlab evaluate --calibrate``, never the test set), and
the result is stored beside the checkpoint as ``temperature.json`` (:func:`write_temperature`),
tied to the checkpoint's step: predict and export use it only for that checkpoint and say
so; for any other step they ignore it with a line saying why (:func:`temperature_for`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cifarlab.atomic import read_json, write_json
from cifarlab.errors import CifarlabError
from cifarlab.rundir import RunDir, versions
from cifarlab.stored import number

N_BINS = 15  # equal-width confidence bins (Guo et al. 2017 use 15)
# The fitted temperature is kept within [1/100, 100]: beyond that the validation logits are
# degenerate (e.g. every image right by a wide margin, where NLL falls without bound as T -> 0).
# A temperature.json outside it is refused when read (read_temperature): fitted values are
# about 1-3 (Guo et al. 2017, table 1), and within the range float32 logits divided by T stay
# finite and keep their order, so the predicted class is the model's own.
T_MIN, T_MAX = 1e-2, 1e2
FORMAT = "cifarlab-temperature"
FORMAT_VERSION = 1


class CalibrationError(CifarlabError):
    """A temperature cannot be fitted (no validation split) or its file cannot be used."""


# --------------------------------------------------------------------------- metrics


def calibration_sums(
    logits: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS
) -> dict[str, torch.Tensor]:
    """Additive statistics (float64, on the logits' device) behind ECE, NLL, Brier and the
    reliability diagram: NLL and Brier sums, and per-bin count, correct and confidence sums."""
    labels = labels.to(logits.device).long()
    n = labels.numel()
    z = logits.double()
    if n == 0:
        zero = torch.zeros((), dtype=torch.float64, device=logits.device)
        bins = torch.zeros(n_bins, dtype=torch.float64, device=logits.device)
        return {
            "nll_sum": zero,
            "brier_sum": zero.clone(),
            "bin_count": bins,
            "bin_correct": bins.clone(),
            "bin_confidence": bins.clone(),
        }
    log_p = F.log_softmax(z, dim=1)
    p = log_p.exp()
    confidence, pred = p.max(dim=1)
    correct = (pred == labels).double()
    # sum_k (p_k - y_k)^2 = sum_k p_k^2 - 2 p_label + 1
    brier = (p * p).sum(dim=1) - 2 * p.gather(1, labels[:, None]).squeeze(1) + 1
    # Bin b is (b/n, (b+1)/n]; a confidence is never 0 (it is at least 1/K).
    index = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)
    member = F.one_hot(index, n_bins).double()  # a matrix product, not index_add: deterministic
    return {
        "nll_sum": F.nll_loss(log_p, labels, reduction="sum"),
        "brier_sum": brier.sum(),
        "bin_count": member.sum(dim=0),
        "bin_correct": correct @ member,
        "bin_confidence": confidence @ member,
    }


def calibration_from_sums(sums: dict[str, torch.Tensor]) -> dict[str, Any]:
    """ECE, NLL, Brier and the reliability diagram's bins from (summed) calibration_sums;
    the numbers are None when there were no images."""
    count = sums["bin_count"].double().cpu()
    correct = sums["bin_correct"].double().cpu()
    conf = sums["bin_confidence"].double().cpu()
    n = float(count.sum())
    filled = count > 0
    accuracy = torch.where(filled, correct / count.clamp(min=1), torch.nan)
    confidence = torch.where(filled, conf / count.clamp(min=1), torch.nan)
    return {
        "ece": float((correct - conf).abs().sum()) / n if n else None,
        "nll": float(sums["nll_sum"]) / n if n else None,
        "brier": float(sums["brier_sum"]) / n if n else None,
        "reliability": {
            "n_bins": len(count),
            "count": [int(c) for c in count.round().long().tolist()],
            "accuracy": [None if math.isnan(a) else a for a in accuracy.tolist()],
            "confidence": [None if math.isnan(c) else c for c in confidence.tolist()],
        },
    }


def calibration_metrics(
    logits: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS
) -> dict[str, Any]:
    """{"ece", "nll", "brier", "reliability"} of ``logits`` against ``labels``."""
    return calibration_from_sums(calibration_sums(logits, labels, n_bins))


def expected_calibration_error(
    logits: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS
) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins (module docstring)."""
    return calibration_metrics(logits, labels, n_bins)["ece"]


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy of the labels, in nats."""
    return float(F.cross_entropy(logits.double(), labels.to(logits.device).long()))


def brier_score(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over images of sum_k (p_k - onehot_k)^2 (in [0, 2]; not divided by K)."""
    return calibration_metrics(logits, labels)["brier"]


# --------------------------------------------------------------------------- temperature


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``: same argmax, softer (T > 1) or sharper (T < 1) softmax."""
    return logits / temperature


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 100) -> float:
    """The T > 0 that minimises NLL(logits / T, labels), as Guo et al. (2017) fit it.

    L-BFGS with a strong-Wolfe line search over log T (so T stays positive), from T = 1, in
    float64 on the CPU: the same logits always give the same T. NLL is convex in 1/T, so the
    minimum found is the global one; the result is clamped to [T_MIN, T_MAX], which still
    never raises NLL above its value at T = 1.
    """
    z = logits.detach().to("cpu", torch.float64)
    y = labels.detach().to("cpu").long()
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[0] != y.numel():
        raise ValueError(
            f"fit_temperature needs logits (N, K) and labels (N,), N > 0; got {tuple(z.shape)} "
            f"and {tuple(y.shape)}"
        )
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [log_t],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    value = float(log_t.detach())
    if not math.isfinite(value):  # pragma: no cover - L-BFGS keeps a finite iterate
        return 1.0
    return min(max(math.exp(value), T_MIN), T_MAX)


class TemperatureScaled(torch.nn.Module):
    """``model``'s logits divided by a fitted temperature (what export writes when one is
    present; the argmax is the model's own)."""

    def __init__(self, model: torch.nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


# --------------------------------------------------------------------------- temperature.json


def temperature_path(checkpoint: str | Path) -> Path:
    """Where the temperature of ``checkpoint`` (a file or a run directory) lives: beside it."""
    return RunDir.of_checkpoint(checkpoint).temperature_path


def write_temperature(
    checkpoint: str | Path, temperature: float, *, step: int, **record: Any
) -> Path:
    """Write temperature.json beside ``checkpoint`` atomically: T, the checkpoint step it was
    fitted for, and ``record`` (validation count, split, NLL before and after, ...)."""
    return write_json(
        temperature_path(checkpoint),
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "temperature": float(temperature),
            "step": int(step),
            **record,
            "versions": versions(),
        },
        error=CalibrationError,
    )


def read_temperature(checkpoint: str | Path) -> dict[str, Any] | None:
    """The temperature.json beside ``checkpoint``; None when there is none. A file that is
    not a valid temperature record raises CalibrationError naming it."""
    path = temperature_path(checkpoint)
    record = read_json(path, CalibrationError)
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CalibrationError(
            f"{path}: not a valid temperature record (no format {FORMAT!r}); rerun cifarlab evaluate "
            f"--calibrate or remove the file"
        )
    # The range the fit itself keeps to: any T in it divides float32 logits into finite
    # values in the same order; 1e-300 makes them inf (NaN probabilities), 1e308 rounds them
    # all to 0 (every class 10%).
    number(record.get("temperature"), path, "temperature", low=T_MIN, high=T_MAX)
    number(record.get("step"), path, "step", low=0, integer=True)
    number(
        record.get("validation_count"), path, "validation_count", low=0, integer=True, optional=True
    )
    return record


def stored_temperature(checkpoint: str | Path, step: int) -> tuple[dict | None, str | None]:
    """(record, line) for the checkpoint at ``step``, from one read of temperature.json: the
    record when it was fitted for this step; a stale one (another step: the run trained on,
    or this is checkpoint.prev.pt) is ignored, record None, and the line says so.
    (None, None): no file."""
    record = read_temperature(checkpoint)
    if record is None:
        return None, None
    path = temperature_path(checkpoint)
    if record["step"] != step:
        return None, (
            f"{path}: ignored: fitted for the checkpoint at step {record['step']}, this one is "
            f"at step {step}; uncalibrated probabilities. Rerun cifarlab evaluate --calibrate"
        )
    count = record.get("validation_count")
    on = f"{count:,} validation images" if isinstance(count, int) else "the validation split"
    t = float(record["temperature"])
    return record, f"calibrated: temperature {t:.4g} from {path} (fitted on {on} at step {step})"


def temperature_for(checkpoint: str | Path, step: int) -> tuple[float | None, str | None]:
    """(T, line) for the checkpoint at ``step``: :func:`stored_temperature`'s record's T."""
    record, line = stored_temperature(checkpoint, step)
    return (None if record is None else float(record["temperature"])), line
