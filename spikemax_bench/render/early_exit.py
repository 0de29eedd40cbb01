"""The early-exit results as text: the table of the headline rule, its note and one sentence per framework x loss."""

from __future__ import annotations

import math
from typing import Any

from spikemax_plugins import early_exit

from ..measures import COVERAGE_RULE, HEADLINE_RULE
from .rows import SMOKE_BANNER, format_measure, format_value, is_quick, seed_count


def rule_summary(record: dict[str, Any], rule: tuple[str, float]) -> dict[str, Any] | None:
    """The summary over seeds of one early-exit rule (``(method, alpha)``) of a framework x loss record, or None
    when the record has no such rule."""
    for entry in record["summary"].get("early_exit", []):
        if (entry["method"], entry["alpha"]) == rule:
            return entry
    return None


_NO_MEASURE = {"mean": None, "std": None}
# (column title, terminal title, rule, measure) of the early-exit table, after framework and loss; rule None: the
# full window's summary. The terminal shows the two accuracies in one column, "full → early exit".
EARLY_EXIT_COLUMNS = (
    ("accuracy, full window", "accuracy: full → early exit", None, "accuracy"),
    ("accuracy, early exit", None, HEADLINE_RULE, "accuracy"),
    ("time steps used", "steps used", HEADLINE_RULE, "exit_fraction"),
    ("synaptic ops from hidden spikes used", "hidden ops used", HEADLINE_RULE, "hidden_synaptic_operations_share"),
    ("all synaptic ops used", "all ops used", HEADLINE_RULE, "synaptic_operations_share"),
    ("hidden + output spikes used", "spikes used", HEADLINE_RULE, "network_spikes_share"),
    (
        f"coverage of the conformal rule (alpha = {COVERAGE_RULE[1]:g})",
        f"coverage α={COVERAGE_RULE[1]:g}",
        COVERAGE_RULE,
        "coverage",
    ),
)


def early_exit_rows(document: dict[str, Any], *, terminal: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the early-exit table: per framework x loss, the full window's accuracy and, for the
    headline rule (:data:`~spikemax_bench.measures.HEADLINE_RULE`), the early-exit accuracy and the shares
    of time steps, synaptic operations and spikes used; then the conformal rule's coverage, each "mean ± std".

    ``terminal``: for a table that fits 100 columns, short titles, means only, and both accuracies in one column
    ("0.912 → 0.905").
    """
    header = ["framework", "loss"]
    header += [short for _, short, _, _ in EARLY_EXIT_COLUMNS if short] if terminal else [
        title for title, _, _, _ in EARLY_EXIT_COLUMNS
    ]
    rows = []
    for record in document["records"]:
        row = [record["framework"], record["loss"]]
        for _, short, rule, metric in EARLY_EXIT_COLUMNS:
            source = record["summary"] if rule is None else (rule_summary(record, rule) or {})
            measure = source.get(metric, _NO_MEASURE)
            if not terminal:
                row.append(format_measure(metric, measure))
            elif short is None:  # the early-exit accuracy joins the full window's
                row[-1] += f" → {format_value(metric, measure['mean'])}"
            else:
                row.append(format_value(metric, measure["mean"]))
        rows.append(row)
    return header, rows


def _headline_alpha() -> str:
    return f"alpha = {HEADLINE_RULE[1]:g}"


def _headline_loss() -> str:
    """The headline rule's tolerated accuracy loss in percentage points, e.g. "1 point"."""
    points = HEADLINE_RULE[1] * 100
    return f"{points:g} point{'s' if points != 1 else ''}"


def early_exit_note(document: dict[str, Any]) -> str:
    """What the early-exit table shows, and why a rule is missing where it is."""
    seeds = seed_count(document)
    note = (
        f"Early exit (`spikemax_plugins.early_exit`) with the rule calibrated on each seed's validation split to lose "
        f"at most {_headline_loss()} of accuracy there against the full window (method \"{HEADLINE_RULE[0]}\", "
        f"{_headline_alpha()}: one threshold on the spike-count probability, checked at every step), applied to "
        "the test split. *Used*: the share of the full window's time steps (the mean of (exit step + 1) / T), of the "
        "synaptic operations driven by hidden spikes, of all synaptic operations (input and hidden) and of the "
        "hidden and output spikes, counted up to each sample's exit. *Coverage*: the share of test samples whose "
        f"class is in the prediction set of the conformal rule (SpikeCP, alpha = {COVERAGE_RULE[1]:g}, "
        f"{early_exit.CONFORMAL_CHECKPOINTS} checkpoints), which guarantees at least {1 - COVERAGE_RULE[1]:g} for "
        "exchangeable data."
    )
    if seeds > 1:
        note += f" Mean ± std over {seeds} seeds."
    missing = [
        record for record in document["records"] if (rule_summary(record, COVERAGE_RULE) or {}).get("calibrated_seeds")
        != len(record["seeds"])
    ]
    if missing:
        needed = math.ceil(early_exit.CONFORMAL_CHECKPOINTS / COVERAGE_RULE[1] - 1)
        note += (
            f" n/a: the conformal rule could not be calibrated on every seed; with {early_exit.CONFORMAL_CHECKPOINTS} "
            f"checkpoints it needs at least {needed} validation samples (this run has "
            f"{document['dataset']['sizes']['validation']})."
        )
    return note


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def early_exit_summary_lines(document: dict[str, Any]) -> list[str]:
    """One sentence per framework x loss: the share of the time steps and of the synaptic operations that the
    headline rule (at most 1 point of accuracy lost on validation) needs, with the test accuracies it reaches."""
    seeds = seed_count(document)
    over = f", mean over {seeds} seeds" if seeds > 1 else ""
    lines = [
        f"Early exit on the test split, with the rule calibrated on the validation split to lose at most "
        f"{_headline_loss()} of accuracy there ({document['dataset']['name']}{over}):",
        "",
    ]
    if is_quick(document):
        lines = [f"{SMOKE_BANNER}", "", *lines]
    for record in document["records"]:
        rule = rule_summary(record, HEADLINE_RULE) or {}
        time_share = rule.get("exit_fraction", _NO_MEASURE)["mean"]
        operations = rule.get("synaptic_operations_share", _NO_MEASURE)["mean"]
        accuracy = rule.get("accuracy", _NO_MEASURE)["mean"]
        lines.append(
            f"- {record['framework']}: at ≤ {_headline_loss()} accuracy loss (the {_headline_alpha()} rule), "
            f"`{record['loss']}` "
            f"needs {_percent(time_share)} of the time steps and {_percent(operations)} of the synaptic operations "
            f"(test accuracy {format_value('accuracy', accuracy)} with early exit, "
            f"{format_value('accuracy', record['summary']['accuracy']['mean'])} over the full window)."
        )
    return lines
