"""Paired comparisons over seeds: Student-t confidence intervals of the mean paired difference.

The bench trains every loss from the same seeds (the same initial weights and the same data order per seed), so
two losses are compared seed by seed: the differences ``d_s = ours_s - baseline_s`` are paired, and the mean
difference gets a Student-t interval with ``n - 1`` degrees of freedom (the quantile from ``scipy.stats.t``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

__all__ = ["PairedInterval", "paired_interval"]


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
        float(student_t.ppf((1.0 + confidence) / 2.0, len(differences) - 1))
        * statistics.stdev(differences)
        / math.sqrt(len(differences))
    )
    return PairedInterval(len(differences), mean, mean - half_width, mean + half_width, confidence)
