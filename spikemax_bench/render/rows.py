"""Values as the results show them, what a run was, and the rows of the results tables (Markdown and terminal)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..sweep import describe_hyper_parameters

# (file name, alt text) of the figures the bench draws, in the order of the ``plots`` block.
PLOTS = {
    "accuracy-plot": ("accuracy_vs_time.png", "Test accuracy of the running prediction over the time steps seen"),
    "spikes-plot": (
        "spikes_per_sample.png",
        "Spikes and synaptic operations per test sample that the loss can change (hidden and output layers)",
    ),
    "training-plot": ("training_curves.png", "Training loss and validation accuracy per epoch"),
    "early-exit-plot": (
        "early_exit.png",
        "Early-exit test accuracy against the share of time steps used, one point per calibration alpha",
    ),
}
# Drawn only for runs that measured the compute per decision (results.json schema 4 and later).
ENERGY_PLOT = (
    "energy.png",
    "Test accuracy against synaptic operations per decision, one line per loss through its activity penalties",
)
SMOKE_BANNER = "Smoke run (`--quick`: tiny data subsets, 1 epoch, no sweep): checks that the bench works; not a result."

_THREE_DECIMALS = {
    "accuracy",
    "no_decision_fraction",
    "time_to_decision_fraction",
    "validation_accuracy",
    "coverage",
    "exit_fraction",
    "hidden_synaptic_operations_share",
    "synaptic_operations_share",
    "network_spikes_share",
}
_TWO_DECIMALS = {"network_calls_per_decision"}
_NO_DECIMALS = {
    "synaptic_operations_per_decision",
    "synaptic_operations_per_sample",
    "hidden_synaptic_operations_per_sample",
    "input_synaptic_operations_per_sample",
}


def digits(metric: str) -> int:
    if metric in _THREE_DECIMALS:
        return 3
    if metric in _NO_DECIMALS:
        return 0
    if metric in _TWO_DECIMALS:
        return 2
    if metric == "final_train_loss":
        return 4
    return 1


def format_value(metric: str, value: float | None, *, signed: bool = False) -> str:
    """One number of ``metric`` as text: accuracies and shares with 3 decimals, operations with none, losses 4,
    counts and steps 1; "n/a" for None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:{'+' if signed else ''}.{digits(metric)}f}"


def format_measure(metric: str, measure: dict[str, float | None]) -> str:
    """``{"mean", "std"}`` of ``metric`` as ``"mean ± std"`` (just the mean when std is 0 or None)."""
    text = format_value(metric, measure["mean"])
    if measure["mean"] is not None and measure["std"]:
        text += f" ± {format_value(metric, measure['std'])}"
    return text


def seed_count(document: dict[str, Any]) -> int:
    return document["config"]["seeds"]


def is_quick(document: dict[str, Any]) -> bool:
    return bool(document["config"].get("quick"))


def run_description(document: dict[str, Any]) -> str:
    """Data set, test split, T and seeds of the run, e.g. "digits-dvs, test split (359 samples), T = 30, 5 seeds,
    mean ± std over seeds"."""
    dataset = document["dataset"]
    seeds = seed_count(document)
    return (
        f"{dataset['name']}, test split ({dataset['sizes']['test']} samples), T = {dataset['time_steps']}, "
        f"{seeds} seed{'s' if seeds > 1 else ''}{', mean ± std over seeds' if seeds > 1 else ''}"
    )


SMOKE_PREFIX = "SMOKE RUN (--quick), not a result: "


def run_title(document: dict[str, Any]) -> str:
    """:func:`run_description`, preceded by :data:`SMOKE_PREFIX` for a ``--quick`` run."""
    return f"{SMOKE_PREFIX if is_quick(document) else ''}{run_description(document)}"


def _learning_rate_swept(document: dict[str, Any]) -> bool:
    """Whether the run chose among several learning rates (then each candidate names its rate)."""
    return bool(document["config"]["sweep"]) and len(document["config"]["learning_rates"]) > 1


def chosen_text(record: dict[str, Any], document: dict[str, Any]) -> str:
    """A record's or sweep candidate's hyper-parameters, with its learning rate when the run swept several."""
    text = describe_hyper_parameters(record["hyper_parameters"])
    if _learning_rate_swept(document):
        text += f" lr={record['learning_rate']:g}"
    return text


# (column title, summary metric) of the results table, after framework, loss and hyper-parameters.
RESULTS_COLUMNS = (
    ("accuracy", "accuracy"),
    ("steps to decision", "steps_to_decision"),
    ("decision at (share of T)", "time_to_decision_fraction"),
    ("no decision", "no_decision_fraction"),
    ("output spikes", "output_spikes_per_sample"),
    ("network spikes", "network_spikes_per_sample"),
)
ENERGY_COLUMNS = (
    ("output spikes", "output_spikes_per_sample"),
    ("hidden spikes", "hidden_spikes_per_sample"),
    ("hidden + output spikes", "network_spikes_per_sample"),
    ("synaptic ops from hidden spikes", "hidden_synaptic_operations_per_sample"),
)
TRAINING_COLUMNS = (("final train loss", "final_train_loss"), ("s/epoch", "seconds_per_epoch"))


def _rows(
    document: dict[str, Any], columns: Sequence[tuple[str, str]], *, hyper_parameters: bool
) -> tuple[list[str], list[list[str]]]:
    header = ["framework", "loss", *(["hyper-parameters"] if hyper_parameters else []), *(t for t, _ in columns)]
    rows = [
        [
            record["framework"],
            record["loss"],
            *([chosen_text(record, document)] if hyper_parameters else []),
            *(format_measure(metric, record["summary"][metric]) for _, metric in columns),
        ]
        for record in document["records"]
    ]
    return header, rows


def results_rows(document: dict[str, Any], *, hyper_parameters: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table (accuracy, decisions, spikes), shared by terminal and Markdown."""
    return _rows(document, RESULTS_COLUMNS, hyper_parameters=hyper_parameters)


def energy_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the spikes and synaptic operations that the loss can change."""
    return _rows(document, ENERGY_COLUMNS, hyper_parameters=False)


def training_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the chosen hyper-parameters, final training loss and seconds per epoch."""
    return _rows(document, TRAINING_COLUMNS, hyper_parameters=True)


def input_activity_line(document: dict[str, Any]) -> str:
    """The input's spikes and synaptic operations per sample, which are the same for every loss."""
    parts = []
    for metric, name in (
        ("input_spikes_per_sample", "input events"),
        ("input_synaptic_operations_per_sample", "synaptic operations driven by them"),
    ):
        means = [record["summary"][metric]["mean"] for record in document["records"]]
        means = [mean for mean in means if mean is not None]
        if not means:
            parts.append(f"n/a {name}")
            continue
        low, high = format_value(metric, min(means)), format_value(metric, max(means))
        parts.append(f"{low} {name}" if low == high else f"{low} to {high} {name}")
    return (
        f"Input, the same for every loss and left out above: {parts[0]} and {parts[1]} per sample "
        "(NeuroBench's total synaptic operations add the two)."
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
