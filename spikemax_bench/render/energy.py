"""The compute a decision costs, and the activity-penalty trade-off: table rows and the restated energy claim.

Runs recorded before these measures existed (results.json schema 3: no ``per_decision``, no
``activity_penalty``) render a sentence saying so instead of a table.
"""

from __future__ import annotations

from typing import Any

from ..verdicts import CONFIDENCE, ENERGY_BASELINES, SPIKEMAX_LOSSES, activity_penalty_of
from .rows import SMOKE_BANNER, format_measure, format_value, is_quick, seed_count

__all__ = [
    "activity_penalty_rows",
    "all_records",
    "energy_claim_lines",
    "has_per_decision",
    "headline_accuracy",
    "per_decision_note",
    "per_decision_rows",
]

NOT_MEASURED = (
    "Not measured in this run: it was recorded before spikemax-bench measured the compute per decision "
    "(results.json schema 3); run it again to get these numbers."
)
# (column title, measure) of the per-decision table; each cell shows "full window → early exit".
PER_DECISION_COLUMNS = (
    ("network calls", "network_calls_per_decision"),
    ("sample-steps", "sample_steps_per_decision"),
    ("synaptic ops", "synaptic_operations_per_decision"),
    ("spikes", "spikes_per_decision"),
)


def all_records(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every framework x loss x activity-penalty record of a run (``records``, then
    ``activity_penalty_records``)."""
    return [*document["records"], *document.get("activity_penalty_records", [])]


def has_per_decision(document: dict[str, Any]) -> bool:
    return all("per_decision" in record["summary"] for record in document["records"])


def headline_accuracy(record: dict[str, Any]) -> dict[str, float | None]:
    """The early-exit accuracy (``{"mean", "std"}`` over seeds) of the rule the per-decision measures used."""
    rule = record["seeds"][0]["per_decision"]["rule"]
    key = (rule["method"], rule["alpha"])
    entries = record["summary"]["early_exit"]
    return next(entry["accuracy"] for entry in entries if (entry["method"], entry["alpha"]) == key)


def _full_to_early(name: str, measure: dict[str, dict[str, float | None]]) -> str:
    return f"{format_measure(name, measure['full_window'])} → {format_measure(name, measure['early_exit'])}"


def per_decision_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the compute per decision (full window → early exit), one row per framework x loss."""
    header = ["framework", "loss", *(title for title, _ in PER_DECISION_COLUMNS)]
    rows = [
        [
            record["framework"],
            record["loss"],
            *(_full_to_early(name, record["summary"]["per_decision"][name]) for _, name in PER_DECISION_COLUMNS),
        ]
        for record in document["records"]
    ]
    return header, rows


def per_decision_note(document: dict[str, Any]) -> str:
    """What the per-decision table counts, with the engine's slot count and the headline rule."""
    first = document["records"][0]["seeds"][0]["per_decision"]
    rule = first["rule"]
    return (
        f"Per decision (one test sample), full window → early exit with the {rule['method']} rule at alpha = "
        f"{rule['alpha']:g} (calibrated on validation). Network calls: one step of a batch each; the full window "
        f"steps batches of {document['config']['batch_size']} through all T steps, early exit is the engine "
        f"(`early_exit.stream`, {first['slots']} slots: an exited row takes the next sample). Sample-steps: "
        "(sample, step) pairs simulated. Synaptic ops: input- and hidden-driven, up to each exit. Spikes: hidden and "
        "output. Deterministic counts, no clock."
    )


def activity_penalty_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of accuracy and energy per framework x loss x activity penalty λ."""
    header = [
        "framework",
        "loss",
        "λ",
        "accuracy: full → early exit",
        "synaptic ops per decision: full → early exit",
        "spikes per decision: full → early exit",
    ]
    rows = []
    losses = {loss: index for index, loss in enumerate(document["config"]["losses"])}
    frameworks = {name: index for index, name in enumerate(document["config"]["frameworks"])}
    records = sorted(
        all_records(document),
        key=lambda record: (frameworks[record["framework"]], losses[record["loss"]], activity_penalty_of(record)),
    )
    for record in records:
        summary = record["summary"]
        per_decision = summary["per_decision"]
        accuracy = format_measure("accuracy", summary["accuracy"])
        rows.append(
            [
                record["framework"],
                record["loss"],
                f"{activity_penalty_of(record):g}",
                f"{accuracy} → {format_measure('accuracy', headline_accuracy(record))}",
                _full_to_early("synaptic_operations_per_decision", per_decision["synaptic_operations_per_decision"]),
                _full_to_early("spikes_per_decision", per_decision["spikes_per_decision"]),
            ]
        )
    return header, rows


def _comparison_text(metric: str, comparison: dict[str, Any]) -> str:
    text = (
        f"{comparison['framework']}, {comparison['loss']} (λ = {comparison['activity_penalty']:g}) vs "
        f"{comparison['baseline']} (λ = {comparison['baseline_activity_penalty']:g}): "
        f"{format_value(metric, comparison['value'])} vs {format_value(metric, comparison['baseline_value'])} "
        "synaptic ops per decision"
    )
    if comparison["ci95"] is not None:
        low, high = comparison["ci95"]
        text += (
            f", difference {format_value(metric, comparison['difference'], signed=True)} ({CONFIDENCE:.0%} CI "
            f"{format_value(metric, low, signed=True)} to {format_value(metric, high, signed=True)}, "
            f"{comparison['pairs']} paired seeds)"
        )
    return f"{text}: {comparison['outcome']}"


def energy_claim_lines(document: dict[str, Any]) -> list[str]:
    """The energy claim restated at matched accuracy: the matching, then one line per paired comparison."""
    if not has_per_decision(document):
        return [NOT_MEASURED]
    if is_quick(document):
        return [f"{SMOKE_BANNER} No verdict on the energy claim."]
    verdicts = document.get("energy_verdicts", [])
    if not verdicts:
        return [f"Not tested: the run needs mse_count and {' or '.join(SPIKEMAX_LOSSES)} in one framework."]
    (verdict,) = verdicts
    margin = verdict["accuracy_margin"]
    lines = [
        f"- **{verdict['claim']}: {verdict['overall']}.** {verdict['statement']} (early exit with the headline "
        "rule, paired by seed).",
        *(f"  - {_comparison_text(verdict['metric'], comparison)}" for comparison in verdict["comparisons"]),
        "",
        f"Matching: per framework the reference is mse_count's best mean full-window test accuracy over its "
        f"activity penalties λ; each loss is taken at the λ that reaches within {margin * 100:g} point of it with "
        "the fewest synaptic operations per early-exit decision (mean over seeds), or, when no λ reaches it, at "
        f"its most accurate λ (marked unmatched). Baselines: {', '.join(ENERGY_BASELINES)}.",
        "",
        "| framework | loss | λ | accuracy | reference | matched | synaptic ops per decision |",
        "|---|---|---|---|---|---|---|",
    ]
    for match in verdict["matches"]:
        lines.append(
            f"| {match['framework']} | {match['loss']} | {match['activity_penalty']:g} | "
            f"{format_value('accuracy', match['accuracy'])} | {format_value('accuracy', match['reference_accuracy'])} "
            f"| {'yes' if match['matched'] else '**no**: most accurate λ'} | "
            f"{format_value('synaptic_operations_per_decision', match['synaptic_operations_per_decision'])} |"
        )
    if seed_count(document) < 2:
        lines += ["", "One seed: no comparison is tested (a verdict needs a confidence interval, `--seeds` >= 2)."]
    return lines
