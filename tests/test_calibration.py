"""Calibration metrics against their definitions, and temperature scaling's properties."""

from __future__ import annotations

import math

import pytest
import torch

from cifarlab.calibration import (
    N_BINS,
    apply_temperature,
    brier_score,
    calibration_from_sums,
    calibration_metrics,
    calibration_sums,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_logits(n: int, k: int = 10, scale: float = 2.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=_gen(seed), dtype=torch.float64) * scale


def draw_labels(logits: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Labels drawn from softmax(logits): a predictor calibrated by construction."""
    return torch.multinomial(torch.softmax(logits, 1), 1, generator=_gen(seed)).squeeze(1)


def test_ece_of_a_perfectly_calibrated_predictor_is_near_zero():
    # Labels drawn from the predictor's own probabilities: P(right | confidence c) = c exactly.
    # What remains is sampling noise: about sum_b sqrt(n_b) * 0.4 / N ≈ 0.003 at N = 200,000.
    logits = random_logits(200_000)
    ece = expected_calibration_error(logits, draw_labels(logits))
    assert 0.0 <= ece < 0.01


def test_ece_of_an_over_confident_predictor_is_its_gap():
    # Always 90% sure of class 0, right 60% of the time: ECE = |0.6 - 0.9| = 0.3.
    n, k = 1000, 10
    probs = torch.full((n, k), 0.1 / (k - 1), dtype=torch.float64)
    probs[:, 0] = 0.9
    labels = torch.zeros(n, dtype=torch.long)
    labels[600:] = torch.arange(400) % (k - 1) + 1
    result = calibration_metrics(probs.log(), labels)
    assert result["ece"] == pytest.approx(0.3, abs=1e-12)
    rel = result["reliability"]
    b = math.ceil(0.9 * N_BINS) - 1  # (13/15, 14/15]
    assert rel["n_bins"] == N_BINS and rel["count"][b] == n and sum(rel["count"]) == n
    assert rel["accuracy"][b] == pytest.approx(0.6) and rel["confidence"][b] == pytest.approx(0.9)
    assert all(a is None for i, a in enumerate(rel["accuracy"]) if i != b)


def test_ece_weights_each_bin_by_its_share_of_images():
    # 100 images at confidence 0.95 all right (gap 0.05), 300 at 0.5 of which 60% right (0.1).
    probs = torch.tensor([[0.95, 0.05]] * 100 + [[0.5, 0.5 - 1e-9]] * 300, dtype=torch.float64)
    labels = torch.tensor([0] * 100 + [0] * 180 + [1] * 120)
    expected = 100 / 400 * 0.05 + 300 / 400 * abs(0.6 - 0.5)
    assert expected_calibration_error(probs.log(), labels) == pytest.approx(expected, abs=1e-9)


def test_nll_and_brier_against_hand_computed_values():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    logits = probs.log()
    # NLL: -(ln 0.7 + ln 0.3) / 2
    assert negative_log_likelihood(logits, labels) == pytest.approx(
        -(math.log(0.7) + math.log(0.3)) / 2
    )
    # Brier: ((0.3² + 0.2² + 0.1²) + (0.1² + 0.7² + 0.6²)) / 2 = (0.14 + 0.86) / 2 = 0.5
    assert brier_score(logits, labels) == pytest.approx(0.5)
    m = calibration_metrics(logits, labels)
    assert m["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.3)) / 2)
    assert m["brier"] == pytest.approx(0.5)


def test_brier_is_zero_when_certain_and_right_and_two_when_certain_and_wrong():
    logits = torch.tensor([[50.0, -50.0, -50.0]] * 2, dtype=torch.float64)
    assert brier_score(logits, torch.tensor([0, 0])) == pytest.approx(0.0, abs=1e-12)
    assert brier_score(logits, torch.tensor([1, 2])) == pytest.approx(2.0)


def test_sums_add_up_across_shards():
    # What data-parallel ranks do: sum each shard's statistics, then finish once.
    logits = random_logits(3001, seed=3)
    labels = draw_labels(logits, seed=4)
    whole = calibration_metrics(logits, labels)
    parts = [calibration_sums(logits[a:b], labels[a:b]) for a, b in ((0, 1000), (1000, 3001))]
    summed = calibration_from_sums({k: parts[0][k] + parts[1][k] for k in parts[0]})
    for key in ("ece", "nll", "brier"):
        assert summed[key] == pytest.approx(whole[key], rel=1e-12)
    assert summed["reliability"]["count"] == whole["reliability"]["count"]


def test_no_images_gives_no_numbers():
    m = calibration_metrics(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))
    assert (m["ece"], m["nll"], m["brier"]) == (None, None, None)
    assert m["reliability"]["count"] == [0] * N_BINS


@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.0, 1.7, 20.0])
def test_temperature_scaling_never_changes_the_argmax(temperature):
    logits = random_logits(5000, seed=5).float()
    scaled = apply_temperature(logits, temperature)
    assert torch.equal(scaled.argmax(1), logits.argmax(1))


def test_fit_temperature_recovers_the_temperature_the_logits_were_made_with():
    # Labels drawn from softmax(z) are calibrated for z; the model reports z * 2.5, so the
    # temperature that calibrates it back is 2.5.
    z = random_logits(20_000, scale=1.5, seed=6)
    labels = draw_labels(z, seed=7)
    t = fit_temperature(z * 2.5, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    t = fit_temperature(z / 2.0, labels)  # under-confident: T < 1 sharpens it
    assert t == pytest.approx(0.5, rel=0.05)


def test_fit_temperature_reduces_nll_where_fitted_and_keeps_accuracy():
    z = random_logits(4000, scale=1.0, seed=8)
    labels = draw_labels(z, seed=9)
    over = z * 3.0  # over-confident
    t = fit_temperature(over, labels)
    before, after = negative_log_likelihood(over, labels), negative_log_likelihood(over / t, labels)
    assert after < before
    # Optimal: T nudged either way does no better.
    for nudge in (0.98, 1.02):
        assert after <= negative_log_likelihood(over / (t * nudge), labels) + 1e-9
    assert expected_calibration_error(over / t, labels) < expected_calibration_error(over, labels)
    assert torch.equal((over / t).argmax(1), over.argmax(1))


def test_fit_temperature_is_deterministic_and_float32_agnostic():
    z = random_logits(3000, seed=10)
    labels = draw_labels(z * 0.7, seed=11)
    t1 = fit_temperature(z, labels)
    assert fit_temperature(z.clone(), labels) == t1
    assert fit_temperature(z.float(), labels) == pytest.approx(t1, rel=1e-5)


def test_fit_temperature_stays_bounded_on_degenerate_logits():
    # Every image right by a wide margin: NLL falls without bound as T -> 0.
    logits = torch.eye(10, dtype=torch.float64).repeat(10, 1) * 5
    labels = torch.arange(10).repeat(10)
    t = fit_temperature(logits, labels)
    assert 0.01 <= t < 1.0
    assert negative_log_likelihood(logits / t, labels) <= negative_log_likelihood(logits, labels)
