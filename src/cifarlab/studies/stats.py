"""Small-sample statistics for studies: mean, std, Student-t intervals, Welch differences.

No scipy: the Student t quantile is the inverse of its CDF, which is written
through the regularized incomplete beta function (continued fraction, as in
Numerical Recipes 6.4) and inverted by bisection. That works for any real
degrees of freedom, which Welch's interval needs.

Conventions: ``std`` is the sample standard deviation (n - 1 in the
denominator); intervals are two-sided at ``level`` (0.95 by default); where a
quantity is undefined (a std from one value, an interval from fewer than two
values on a side) it is ``None``, never NaN, so it survives JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a, b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1, got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (df may be non-integer)."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if t == 0:
        return 0.5
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom: t_cdf(q, df) == p.

    e.g. t_quantile(0.975, 2) = 4.302653, t_quantile(0.975, 9) = 2.262157.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket: the CDF is increasing
        lo, hi = hi, hi * 2.0
    for _ in range(200):  # bisection to the last bit of a double
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def sample_std(values: Sequence[float]) -> float | None:
    """Standard deviation with n - 1 in the denominator; None for fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class SummaryStats:
    """Summary of one sample; std and ci are None when n < 2."""

    n: int
    mean: float | None
    std: float | None
    ci: tuple[float, float] | None
    min: float | None
    max: float | None


def summary_stats(values: Sequence[float], level: float = 0.95) -> SummaryStats:
    """n, mean, sample std, the t interval for the mean at ``level``, min and max."""
    n = len(values)
    if n == 0:
        return SummaryStats(0, None, None, None, None, None)
    m = mean(values)
    s = sample_std(values)
    ci = None
    if s is not None:
        half = t_quantile(0.5 + level / 2.0, n - 1) * s / math.sqrt(n)
        ci = (m - half, m + half)
    return SummaryStats(n, m, s, ci, min(values), max(values))


@dataclass(frozen=True)
class Difference:
    """mean(b) - mean(a) with Welch's t interval; se, df and ci are None when undefined."""

    diff: float
    se: float | None
    df: float | None
    ci: tuple[float, float] | None


def welch_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """The difference of means ``mean(b) - mean(a)`` and its Welch t interval at ``level``.

    se = sqrt(s_a^2/n_a + s_b^2/n_b); df by Welch-Satterthwaite. Both samples need n >= 2 for
    an interval. When both samples have zero spread the interval is the point itself.
    """
    if not a or not b:
        raise ValueError("welch_difference needs two non-empty samples")
    diff = mean(b) - mean(a)
    if len(a) < 2 or len(b) < 2:
        return Difference(diff, None, None, None)
    va = sample_std(a) ** 2 / len(a)
    vb = sample_std(b) ** 2 / len(b)
    se2 = va + vb
    if se2 == 0.0:
        return Difference(diff, 0.0, None, (diff, diff))
    df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    se = math.sqrt(se2)
    half = t_quantile(0.5 + level / 2.0, df) * se
    return Difference(diff, se, df, (diff - half, diff + half))
