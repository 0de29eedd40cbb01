"""Paired comparisons over seeds: Student-t confidence intervals without scipy.

The bench trains every loss from the same seeds (the same initial weights and the same data order per seed), so
two losses are compared seed by seed: the differences ``d_s = ours_s - baseline_s`` are paired, and the mean
difference gets a Student-t interval with ``n - 1`` degrees of freedom.

The t quantile is computed, not looked up: the t distribution's CDF is written with the regularised incomplete
beta function (evaluated by its continued fraction, as in Numerical Recipes' ``betacf``, accurate to about
1e-12), and the quantile is found by bisection on that CDF. The tests check it against the closed forms for one
and two degrees of freedom and against published table values.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedInterval", "paired_interval", "student_t_cdf", "student_t_quantile"]

_CONTINUED_FRACTION_STEPS = 300
_TINY = 1e-300


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz's method)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, _CONTINUED_FRACTION_STEPS + 1):
        m2 = 2 * m
        even_step = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd_step = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for numerator in (even_step, odd_step):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            fraction *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return fraction


def _regularised_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The fraction converges fast for x < (a + 1) / (a + b + 2); beyond, use I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, degrees_of_freedom: float) -> float:
    """``P(T <= t)`` for Student's t distribution with ``degrees_of_freedom > 0``; returns a float in [0, 1]."""
    if not degrees_of_freedom > 0:
        raise ValueError(f"degrees_of_freedom must be > 0, got {degrees_of_freedom}")
    x = degrees_of_freedom / (degrees_of_freedom + t * t)
    tail = 0.5 * _regularised_incomplete_beta(degrees_of_freedom / 2.0, 0.5, x)
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(probability: float, degrees_of_freedom: float) -> float:
    """The ``probability`` quantile of Student's t with ``degrees_of_freedom > 0``: the t with CDF(t) = p.

    E.g. ``student_t_quantile(0.975, 4)`` = 2.7764, the half-width factor of a 95 % interval from 5 values.
    Bisection on :func:`student_t_cdf` to a relative precision of about 1e-12.
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if not degrees_of_freedom > 0:
        raise ValueError(f"degrees_of_freedom must be > 0, got {degrees_of_freedom}")
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, degrees_of_freedom)
    low, high = 0.0, 1.0
    while student_t_cdf(high, degrees_of_freedom) < probability:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if student_t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class PairedInterval:
    """Mean of paired differences with its two-sided confidence interval.

    ``low`` and ``high`` are None with fewer than two pairs (no spread can be estimated).
    """

    pairs: int
    mean: float
    low: float | None
    high: float | None
    confidence: float


def paired_interval(ours: Sequence[float], baseline: Sequence[float], *, confidence: float = 0.95) -> PairedInterval:
    """Mean of ``ours[i] - baseline[i]`` and its Student-t interval (``n - 1`` degrees of freedom).

    Returns a :class:`PairedInterval`: ``mean ± t_{(1+confidence)/2, n-1} * sd / sqrt(n)`` with ``sd`` the sample
    standard deviation of the differences. ``ours`` and ``baseline`` are matched by position (the same seed).
    """
    if len(ours) != len(baseline):
        raise ValueError(f"ours and baseline must be paired (same length), got {len(ours)} and {len(baseline)}")
    if not ours:
        raise ValueError("ours and baseline must hold at least one pair, got none")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    differences = [first - second for first, second in zip(ours, baseline, strict=True)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return PairedInterval(1, mean, None, None, confidence)
    half_width = (
        student_t_quantile((1.0 + confidence) / 2.0, len(differences) - 1)
        * statistics.stdev(differences)
        / math.sqrt(len(differences))
    )
    return PairedInterval(len(differences), mean, mean - half_width, mean + half_width, confidence)
