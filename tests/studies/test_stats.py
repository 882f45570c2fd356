"""Study statistics against known values: t quantiles, t intervals, Welch differences."""

from __future__ import annotations

import math

import pytest

from cifarlab.studies.stats import (
    betainc,
    sample_std,
    summary_stats,
    t_cdf,
    t_quantile,
    welch_difference,
)


@pytest.mark.parametrize(
    "df, q",
    [
        (1, 12.706205),
        (2, 4.302653),
        (3, 3.182446),
        (4, 2.776445),
        (9, 2.262157),
        (29, 2.045230),
        (120, 1.979930),
    ],
)
def test_t_quantile_matches_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-6)
    assert t_quantile(0.025, df) == pytest.approx(-q, abs=1e-6)


def test_t_quantile_closed_forms_and_normal_limit():
    for p in (0.6, 0.9, 0.95, 0.99, 0.999):
        # df = 1 is the Cauchy distribution; df = 2 has q = (2p - 1) / sqrt(2 p (1 - p)).
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)  # the normal quantile
    assert t_quantile(0.5, 3) == 0.0


def test_t_cdf_matches_numerical_integration_for_non_integer_df():
    # Welch's df is not an integer: check the CDF against Simpson's rule on the t density.
    df = 243 / 49

    def pdf(x: float) -> float:
        log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    q = t_quantile(0.975, df)
    n, h = 20_000, q / 20_000
    simpson = pdf(0) + pdf(q) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n))
    assert 0.5 + simpson * h / 3 == pytest.approx(0.975, abs=1e-9)
    assert t_cdf(q, df) == pytest.approx(0.975, abs=1e-12)
    assert t_quantile(0.975, 5) < q < t_quantile(0.975, 4)  # decreasing in df


def test_betainc_known_values():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)  # uniform
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)  # 1 - sum of binomial terms
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)


def test_describe_hand_computed():
    d = summary_stats([1.0, 2.0, 3.0])
    assert (d.n, d.mean, d.std, d.min, d.max) == (3, 2.0, 1.0, 1.0, 3.0)
    half = 4.302653 / math.sqrt(3)  # t_{0.975,2} * s / sqrt(n)
    assert d.ci[0] == pytest.approx(2 - half, abs=1e-6)
    assert d.ci[1] == pytest.approx(2 + half, abs=1e-6)
    # ten values: t_{0.975,9} = 2.262157
    vals = [77.1, 77.5, 76.9, 77.8, 77.3, 77.0, 77.6, 77.2, 77.4, 77.2]
    d10 = summary_stats(vals)
    s = math.sqrt(sum((v - 77.3) ** 2 for v in vals) / 9)
    assert d10.mean == pytest.approx(77.3) and d10.std == pytest.approx(s)
    assert d10.ci[1] - d10.mean == pytest.approx(2.262157 * s / math.sqrt(10), abs=1e-6)


def test_one_value_has_no_spread():
    d = summary_stats([71.77])
    assert d.n == 1 and d.mean == 71.77 and d.std is None and d.ci is None
    assert sample_std([5.0]) is None
    assert summary_stats([]).mean is None


def test_welch_difference_hand_computed():
    # a = 1,2,3: mean 2, s^2 = 1; b = 4..7: mean 5.5, s^2 = 5/3.
    # se^2 = 1/3 + 5/12 = 3/4; df = (3/4)^2 / ((1/3)^2/2 + (5/12)^2/3) = 243/49 = 4.9592.
    w = welch_difference([1, 2, 3], [4, 5, 6, 7])
    assert w.diff == pytest.approx(3.5)
    assert w.se == pytest.approx(math.sqrt(0.75))
    assert w.df == pytest.approx(243 / 49)
    t = 2.576959  # t_{0.975, 4.9592}, by the Simpson check above
    assert w.ci[0] == pytest.approx(3.5 - t * math.sqrt(0.75), abs=1e-5)
    assert w.ci[1] == pytest.approx(3.5 + t * math.sqrt(0.75), abs=1e-5)


def test_welch_equal_variances_equal_n_is_the_pooled_interval():
    # n_a = n_b and equal variances: Welch's df = 2n - 2, the pooled t interval.
    a, b = [70.0, 71.0, 72.0], [72.0, 73.0, 74.0]
    w = welch_difference(a, b)
    assert w.df == pytest.approx(4)
    half = 2.776445 * math.sqrt(1 / 3 + 1 / 3)
    assert w.ci == pytest.approx((2 - half, 2 + half), abs=1e-6)


def test_welch_degenerate_cases():
    assert welch_difference([1.0], [2.0, 3.0]).ci is None  # one side has n = 1
    w = welch_difference([10.0, 10.0], [12.0, 12.0])  # no spread at all: the point itself
    assert w.diff == 2.0 and w.ci == (2.0, 2.0)
