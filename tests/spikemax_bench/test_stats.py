"""Verdicts that mean something: paired confidence intervals and the labels they give.

The intervals' t quantiles are checked against published table values (two-sided 95 %: t_{0.975, df}); the
intervals and verdicts against numbers worked out by hand here.
"""

from __future__ import annotations

import math
import statistics

import pytest

from spikemax_bench.stats import paired_interval
from spikemax_bench.verdicts import CLAIMS, compare_paired, verdicts

ACCURACY, EARLIER, FEWER = CLAIMS

# t_{0.975, df} from standard tables (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2), to 3 decimals.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 20: 2.086, 29: 2.045, 30: 2.042,
         60: 2.000, 100: 1.984}  # fmt: skip


@pytest.mark.parametrize(("degrees_of_freedom", "expected"), sorted(T_975.items()))
def test_the_interval_half_width_uses_the_published_t_quantile(degrees_of_freedom, expected):
    # Differences alternating 0 and 2 around a mean of 1 (n = df + 1 of them): sd and n known, so the half-width
    # divided by sd / sqrt(n) is the t quantile the interval used.
    pairs = degrees_of_freedom + 1
    ours = [2.0 * (index % 2) for index in range(pairs)]
    interval = paired_interval(ours, [0.0] * pairs)
    spread = statistics.stdev(ours) / math.sqrt(pairs)
    assert (interval.high - interval.mean) / spread == pytest.approx(expected, abs=6e-4)
    assert (interval.mean - interval.low) / spread == pytest.approx(expected, abs=6e-4)


def test_paired_interval_by_hand():
    # Differences 0.02, 0.01, 0.03: mean 0.02, sd 0.01, half-width t_{0.975,2} * 0.01 / sqrt(3) = 0.0248414.
    interval = paired_interval([0.92, 0.91, 0.93], [0.90, 0.90, 0.90])
    assert interval.pairs == 3
    assert interval.mean == pytest.approx(0.02)
    assert interval.low == pytest.approx(0.02 - 0.0248414, abs=1e-6)
    assert interval.high == pytest.approx(0.02 + 0.0248414, abs=1e-6)
    one = paired_interval([0.5], [0.4])
    assert (one.pairs, one.low, one.high) == (1, None, None) and one.mean == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same length"):
        paired_interval([1.0, 2.0], [1.0])


def test_pairing_finds_a_difference_that_the_spread_between_seeds_hides():
    # Seeds differ a lot (0.80 .. 0.90) but SpikeMax beats the baseline by exactly 0.01 on every seed: the
    # unpaired standard deviations overlap, the paired differences do not vary at all.
    ours, baseline = [0.81, 0.91, 0.86], [0.80, 0.90, 0.85]
    result = compare_paired(ACCURACY, ours, baseline)
    assert result["outcome"] == "holds"
    assert result["ci95"] == pytest.approx([0.01, 0.01])


@pytest.mark.parametrize(
    ("claim", "ours", "baseline", "outcome"),
    [
        # Accuracy, higher is better. Differences 0.02 +- 0.0007: the interval [0.0191, 0.0209] excludes zero above.
        (ACCURACY, [0.92, 0.921, 0.919, 0.92, 0.92], [0.90] * 5, "holds"),
        (ACCURACY, [0.92, 0.91, 0.93], [0.90, 0.90, 0.90], "no difference shown"),  # [-0.0048, 0.0448]
        (ACCURACY, [0.88, 0.879, 0.881, 0.88, 0.88], [0.90] * 5, "contradicted"),  # [-0.0209, -0.0191]
        # Earlier decisions and fewer spikes: lower is better.
        (EARLIER, [0.20, 0.21, 0.19], [0.35, 0.36, 0.34], "holds"),  # differences all -0.15
        (FEWER, [600.0, 610.0, 590.0], [500.0, 505.0, 495.0], "contradicted"),  # +100, +105, +95
        (FEWER, [600.0, 500.0], [500.0, 600.0], "no difference shown"),  # +100, -100
        (ACCURACY, [0.95], [0.90], "not tested"),  # one seed: no interval
        (EARLIER, [None, 0.2, 0.3], [0.4, None, 0.5], "not measurable"),  # one seed with both values
        (EARLIER, [None, None], [0.4, 0.5], "not measurable"),
    ],
)
def test_outcomes(claim, ours, baseline, outcome):
    assert compare_paired(claim, ours, baseline)["outcome"] == outcome


def test_a_quick_run_gets_no_verdict_whatever_its_numbers():
    assert compare_paired(ACCURACY, [0.92, 0.921, 0.919], [0.5, 0.5, 0.5], quick=True)["outcome"] == (
        "smoke run, no verdict"
    )


def seed_records(values: dict[str, list[float | None]]) -> list[dict]:
    """Per-seed records with the given test measures (seed i gets values[metric][i])."""
    seeds = len(next(iter(values.values())))
    return [{"seed": seed, "test": {name: column[seed] for name, column in values.items()}} for seed in range(seeds)]


def record(framework: str, loss: str, accuracy: list[float], fraction: list[float], spikes: list[float]) -> dict:
    values = {"accuracy": accuracy, "time_to_decision_fraction": fraction, "network_spikes_per_sample": spikes}
    return {"framework": framework, "loss": loss, "seeds": seed_records(values)}


def test_verdicts_pair_the_same_seed_of_each_loss_per_framework():
    records = [
        record("snntorch", "spikemax_g", [0.81, 0.91, 0.86], [0.20, 0.21, 0.19], [600.0, 610.0, 590.0]),
        record("snntorch", "mse_count", [0.80, 0.90, 0.85], [0.35, 0.36, 0.34], [500.0, 505.0, 495.0]),
        record("snntorch", "ce_count", [0.99, 0.99, 0.99], [0.01, 0.01, 0.01], [1.0, 1.0, 1.0]),  # not compared
        record("norse", "spikemax_s", [0.80, 0.90, 0.86], [0.30, 0.36, 0.34], [500.0, 505.0, 495.0]),
        record("norse", "mse_count", [0.81, 0.89, 0.85], [0.35, 0.36, 0.34], [500.0, 505.0, 495.0]),
    ]
    result = verdicts(records)
    assert [entry["claim"] for entry in result] == ["accuracy", "earlier decisions", "fewer spikes"]
    accuracy, earlier, fewer = result
    assert [(c["framework"], c["loss"], c["outcome"]) for c in accuracy["comparisons"]] == [
        ("snntorch", "spikemax_g", "holds"),
        ("norse", "spikemax_s", "no difference shown"),  # differences -0.01, +0.01, +0.01
    ]
    assert accuracy["overall"] == "mixed: 1 holds, 1 no difference shown"
    assert accuracy["comparisons"][0]["value"] == pytest.approx(0.86)
    assert accuracy["comparisons"][0]["baseline_value"] == pytest.approx(0.85)
    assert accuracy["comparisons"][0]["seeds"] == [0, 1, 2]
    assert [c["outcome"] for c in earlier["comparisons"]] == ["holds", "no difference shown"]
    assert fewer["overall"] == "mixed: 1 no difference shown, 1 contradicted"  # fixed order, holds first
