"""The paper's three claims, tested per framework and SpikeMax variant against the MSE spike-count loss.

Each comparison is paired by seed: every loss trains from the same seeds (the same initial weights and data
order), so the per-seed differences ``variant - mse_count`` carry the comparison, and their mean gets a 95 %
Student-t confidence interval (``n - 1`` degrees of freedom, :func:`~spikemax_bench.stats.paired_interval`).

Outcomes of one comparison:

* :data:`HOLDS`: the interval excludes zero on the side the claim predicts.
* :data:`NO_DIFFERENCE`: the interval contains zero (the seeds do not show a difference either way).
* :data:`CONTRADICTED`: the interval excludes zero on the other side (the baseline is better).
* :data:`NOT_TESTED`: one seed (no interval); run with ``--seeds`` >= 2 (5 or more for useful intervals).
* :data:`NOT_MEASURABLE`: fewer seeds than that have the measure on both sides (e.g. no decision at all).
* :data:`SMOKE_RUN`: a ``--quick`` run (tiny subsets, one epoch) gives no verdict at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .stats import paired_interval

__all__ = [
    "BASELINE_LOSS",
    "CLAIMS",
    "CONFIDENCE",
    "CONTRADICTED",
    "HOLDS",
    "NOT_MEASURABLE",
    "NOT_TESTED",
    "NO_DIFFERENCE",
    "SMOKE_RUN",
    "SPIKEMAX_LOSSES",
    "ACCURACY_MATCH_MARGIN",
    "ENERGY_CLAIM",
    "Claim",
    "compare_paired",
    "activity_penalty_of",
    "energy_verdicts",
    "verdicts",
]

BASELINE_LOSS = "mse_count"
SPIKEMAX_LOSSES = ("spikemax_g", "spikemax_s")
CONFIDENCE = 0.95

HOLDS = "holds"
NO_DIFFERENCE = "no difference shown"
CONTRADICTED = "contradicted"
NOT_TESTED = "not tested"
NOT_MEASURABLE = "not measurable"
SMOKE_RUN = "smoke run, no verdict"


@dataclass(frozen=True)
class Claim:
    """One claim: the summary measure it is about and which direction the claim predicts."""

    name: str
    metric: str
    higher_is_better: bool
    statement: str


CLAIMS = (
    Claim("accuracy", "accuracy", True, "SpikeMax gives better test accuracy than the MSE spike-count loss"),
    Claim(
        "earlier decisions",
        "time_to_decision_fraction",
        False,
        "SpikeMax networks settle on their final answer earlier (share of the sample seen at the decision)",
    ),
    Claim(
        "fewer spikes",
        "network_spikes_per_sample",
        False,
        "SpikeMax networks fire fewer spikes (hidden and output neurons per sample: the spikes a loss can change)",
    ),
)


ENERGY_CLAIM = Claim(
    "less energy per decision",
    "synaptic_operations_per_decision",
    False,
    "At matched accuracy, SpikeMax networks spend fewer synaptic operations per early-exit decision",
)
# A loss's activity penalty "matches" when its mean full-window test accuracy is within this of the best mean
# full-window accuracy the baseline reaches at any activity penalty.
ACCURACY_MATCH_MARGIN = 0.01
ENERGY_BASELINES = (BASELINE_LOSS, "ce_count")


def compare_paired(
    claim: Claim, ours: Sequence[float | None], baseline: Sequence[float | None], *, quick: bool = False
) -> dict[str, Any]:
    """The outcome of ``claim`` for per-seed values ``ours[i]`` vs ``baseline[i]`` (same seed at the same i).

    Seeds where either value is None are left out. Returns ``outcome`` (one of the module's labels), ``pairs``
    (seeds used), ``difference`` (mean of ``ours - baseline``, None without a pair) and ``ci95`` (``[low,
    high]`` of that mean, None with fewer than two pairs).
    """
    pairs = [(first, second) for first, second in zip(ours, baseline, strict=True) if None not in (first, second)]
    if not pairs:
        return {"outcome": SMOKE_RUN if quick else NOT_MEASURABLE, "pairs": 0, "difference": None, "ci95": None}
    interval = paired_interval([first for first, _ in pairs], [second for _, second in pairs], confidence=CONFIDENCE)
    result = {
        "pairs": interval.pairs,
        "difference": interval.mean,
        "ci95": None if interval.low is None else [interval.low, interval.high],
    }
    if quick:
        return {"outcome": SMOKE_RUN, **result}
    if interval.low is None:
        outcome = NOT_TESTED if len(ours) < 2 else NOT_MEASURABLE
        return {"outcome": outcome, **result}
    # The side of zero the claim predicts: above for "higher is better", below otherwise.
    if interval.low > 0 or interval.high < 0:
        better = interval.low > 0 if claim.higher_is_better else interval.high < 0
        outcome = HOLDS if better else CONTRADICTED
    else:
        outcome = NO_DIFFERENCE
    return {"outcome": outcome, **result}


def _seed_values(record: dict[str, Any], metric: str) -> dict[int, float | None]:
    return {seed_record["seed"]: seed_record["test"].get(metric) for seed_record in record["seeds"]}


_OUTCOME_ORDER = (HOLDS, NO_DIFFERENCE, CONTRADICTED, NOT_TESTED, NOT_MEASURABLE, SMOKE_RUN)


def _overall(outcomes: list[str]) -> str:
    """One label for a claim: the common outcome, or "mixed: ..." with the count of each (holds first)."""
    distinct = [outcome for outcome in _OUTCOME_ORDER if outcome in outcomes]
    if len(distinct) == 1:
        return distinct[0]
    return "mixed: " + ", ".join(f"{outcomes.count(outcome)} {outcome}" for outcome in distinct)


def verdicts(records: Sequence[dict[str, Any]], *, quick: bool = False) -> list[dict[str, Any]]:
    """Each claim of :data:`CLAIMS`, per framework and SpikeMax variant, against :data:`BASELINE_LOSS`.

    Returns one entry per claim: ``claim``, ``statement``, ``metric``, ``overall`` (the common outcome, or
    "mixed: ..." with counts) and ``comparisons`` (``framework``, ``loss``, ``baseline``, ``seeds`` (the seeds
    paired), ``value`` and ``baseline_value`` (means over those seeds), and the fields of
    :func:`compare_paired`). Empty without the baseline or a SpikeMax loss in ``records``.
    """
    by_key = {(record["framework"], record["loss"]): record for record in records}
    frameworks = list(dict.fromkeys(record["framework"] for record in records))
    results = []
    for claim in CLAIMS:
        comparisons = []
        for framework in frameworks:
            if (framework, BASELINE_LOSS) not in by_key:
                continue
            baseline_values = _seed_values(by_key[framework, BASELINE_LOSS], claim.metric)
            for loss in SPIKEMAX_LOSSES:
                if (framework, loss) not in by_key:
                    continue
                our_values = _seed_values(by_key[framework, loss], claim.metric)
                seeds = sorted(set(our_values) & set(baseline_values))
                ours = [our_values[seed] for seed in seeds]
                theirs = [baseline_values[seed] for seed in seeds]
                outcome = compare_paired(claim, ours, theirs, quick=quick)
                paired = [seed for seed in seeds if our_values[seed] is not None and baseline_values[seed] is not None]
                comparisons.append(
                    {
                        "framework": framework,
                        "loss": loss,
                        "baseline": BASELINE_LOSS,
                        "seeds": paired,
                        "value": _mean([our_values[seed] for seed in paired]),
                        "baseline_value": _mean([baseline_values[seed] for seed in paired]),
                        **outcome,
                    }
                )
        if comparisons:
            results.append(
                {
                    "claim": claim.name,
                    "statement": claim.statement,
                    "metric": claim.metric,
                    "higher_is_better": claim.higher_is_better,
                    "overall": _overall([comparison["outcome"] for comparison in comparisons]),
                    "comparisons": comparisons,
                }
            )
    return results


def _mean(values: list[Any]) -> float | None:
    return sum(values) / len(values) if values else None


def activity_penalty_of(record: dict[str, Any]) -> float:
    """The weight λ a record trained with (records of runs made before the regulariser existed: 0)."""
    return record.get("activity_penalty", 0.0)


def _mean_accuracy(record: dict[str, Any]) -> float:
    return record["summary"]["accuracy"]["mean"]


def _early_exit_operations(record: dict[str, Any]) -> dict[int, float | None]:
    """Per seed: synaptic operations per decision with early exit (None where the run has no such measure)."""
    return {
        seed_record["seed"]: seed_record.get("per_decision", {}).get(ENERGY_CLAIM.metric, {}).get("early_exit")
        for seed_record in record["seeds"]
    }


def _matched_record(records: list[dict[str, Any]], reference_accuracy: float) -> tuple[dict[str, Any], bool]:
    """The record (one loss, one activity penalty each) that reaches ``reference_accuracy - margin`` at the
    fewest early-exit synaptic operations per decision, and True; without one that reaches it, the most accurate
    record, and False."""
    reaching = [record for record in records if _mean_accuracy(record) >= reference_accuracy - ACCURACY_MATCH_MARGIN]
    if not reaching:
        return max(records, key=_mean_accuracy), False

    def cost(record: dict[str, Any]) -> float:
        values = [value for value in _early_exit_operations(record).values() if value is not None]
        return sum(values) / len(values) if values else float("inf")

    return min(reaching, key=cost), True


def energy_verdicts(records: Sequence[dict[str, Any]], *, quick: bool = False) -> list[dict[str, Any]]:
    """:data:`ENERGY_CLAIM`, per framework and SpikeMax variant, against each of :data:`ENERGY_BASELINES`.

    ``records``: every framework x loss x activity penalty (records without ``activity_penalty`` count as 0).
    The matching, per framework: the reference accuracy is the best mean full-window test accuracy of
    :data:`BASELINE_LOSS` over its activity penalties; each loss is taken at the activity penalty that reaches
    within :data:`ACCURACY_MATCH_MARGIN` of it with the fewest synaptic operations per early-exit decision (mean
    over seeds), or, when none reaches it, at its most accurate one (``matched`` False). The comparison at those
    penalties is paired by seed as in :func:`verdicts`.

    Returns one entry (empty list without the baseline, a SpikeMax loss or any per-decision measure):
    ``claim``, ``statement``, ``metric``, ``higher_is_better``, ``accuracy_margin``, ``overall``, ``matches``
    (per framework x loss: ``framework``, ``loss``, ``activity_penalty``, ``accuracy``, ``reference_accuracy``,
    ``matched``, ``synaptic_operations_per_decision`` (mean)) and ``comparisons`` (as in :func:`verdicts`, with
    ``activity_penalty`` and ``baseline_activity_penalty``).
    """
    if all(value is None for record in records for value in _early_exit_operations(record).values()):
        return []
    frameworks = list(dict.fromkeys(record["framework"] for record in records))
    matches, comparisons = [], []
    for framework in frameworks:
        by_loss: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            if record["framework"] == framework:
                by_loss.setdefault(record["loss"], []).append(record)
        if BASELINE_LOSS not in by_loss or not any(loss in by_loss for loss in SPIKEMAX_LOSSES):
            continue
        reference = max(_mean_accuracy(record) for record in by_loss[BASELINE_LOSS])
        chosen = {}
        for loss, loss_records in by_loss.items():
            record, matched = _matched_record(loss_records, reference)
            chosen[loss] = record
            values = [value for value in _early_exit_operations(record).values() if value is not None]
            matches.append(
                {
                    "framework": framework,
                    "loss": loss,
                    "activity_penalty": activity_penalty_of(record),
                    "accuracy": _mean_accuracy(record),
                    "reference_accuracy": reference,
                    "matched": matched,
                    ENERGY_CLAIM.metric: _mean(values),
                }
            )
        for loss in SPIKEMAX_LOSSES:
            for baseline in ENERGY_BASELINES:
                if loss not in chosen or baseline not in chosen:
                    continue
                our_values = _early_exit_operations(chosen[loss])
                baseline_values = _early_exit_operations(chosen[baseline])
                seeds = sorted(set(our_values) & set(baseline_values))
                outcome = compare_paired(
                    ENERGY_CLAIM,
                    [our_values[seed] for seed in seeds],
                    [baseline_values[seed] for seed in seeds],
                    quick=quick,
                )
                paired = [seed for seed in seeds if our_values[seed] is not None and baseline_values[seed] is not None]
                comparisons.append(
                    {
                        "framework": framework,
                        "loss": loss,
                        "activity_penalty": activity_penalty_of(chosen[loss]),
                        "baseline": baseline,
                        "baseline_activity_penalty": activity_penalty_of(chosen[baseline]),
                        "seeds": paired,
                        "value": _mean([our_values[seed] for seed in paired]),
                        "baseline_value": _mean([baseline_values[seed] for seed in paired]),
                        **outcome,
                    }
                )
    if not comparisons:
        return []
    return [
        {
            "claim": ENERGY_CLAIM.name,
            "statement": ENERGY_CLAIM.statement,
            "metric": ENERGY_CLAIM.metric,
            "higher_is_better": ENERGY_CLAIM.higher_is_better,
            "accuracy_margin": ACCURACY_MATCH_MARGIN,
            "overall": _overall([comparison["outcome"] for comparison in comparisons]),
            "matches": matches,
            "comparisons": comparisons,
        }
    ]
