"""The summary of a framework x loss over its seeds: mean and standard deviation of every measure."""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from .measures import EARLY_EXIT_METRICS, PER_DECISION_MEASURES

__all__ = ["SUMMARY_METRICS", "summarise", "summarise_early_exit"]

# Per-seed test measures that get a mean and a standard deviation in the summary.
SUMMARY_METRICS = (
    "accuracy",
    "steps_to_decision",
    "time_to_decision_fraction",
    "no_decision_fraction",
    "output_spikes_per_sample",
    "hidden_spikes_per_sample",
    "network_spikes_per_sample",
    "hidden_synaptic_operations_per_sample",
    "input_spikes_per_sample",
    "input_synaptic_operations_per_sample",
    "synaptic_operations_per_sample",
    "seconds_per_epoch",
    "final_train_loss",
)


def _mean_and_std(values: list[float | None]) -> dict[str, float | None]:
    """Mean and sample standard deviation (0 for one value) of the values that are not None."""
    present = [value for value in values if value is not None and math.isfinite(value)]
    if not present:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(present), "std": statistics.stdev(present) if len(present) > 1 else 0.0}


def summarise(seed_records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every :data:`SUMMARY_METRICS` entry, and the mean accuracy-over-time curve."""

    def value_of(record: dict[str, Any], name: str) -> float | None:
        return record[name] if name in record else record["test"][name]

    summary: dict[str, Any] = {
        name: _mean_and_std([value_of(record, name) for record in seed_records]) for name in SUMMARY_METRICS
    }
    curves = torch.tensor([record["test"]["accuracy_over_time"] for record in seed_records], dtype=torch.float64)
    summary["accuracy_over_time"] = {
        "mean": curves.mean(0).tolist(),
        "std": (curves.std(0) if len(seed_records) > 1 else torch.zeros(curves.shape[1])).tolist(),
    }
    if all("rules" in record.get("early_exit", {}) for record in seed_records):
        summary["early_exit"] = summarise_early_exit([record["early_exit"] for record in seed_records])
    if all("per_decision" in record for record in seed_records):
        summary["per_decision"] = {
            name: {
                window: _mean_and_std([record["per_decision"][name][window] for record in seed_records])
                for window in ("full_window", "early_exit")
            }
            for name in PER_DECISION_MEASURES
        }
    return summary


def summarise_early_exit(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per early-exit rule (in the seeds' order of rules): ``method``, ``alpha``, ``calibrated_seeds`` (how many
    seeds could calibrate it) and the mean and std over those seeds of every
    :data:`~spikemax_bench.measures.EARLY_EXIT_METRICS` measure."""
    summary = []
    for position, first in enumerate(per_seed[0]["rules"]):
        entries = [seed["rules"][position] for seed in per_seed]
        if any((entry["method"], entry["alpha"]) != (first["method"], first["alpha"]) for entry in entries):
            raise ValueError(f"every seed must list the same early-exit rules; rule {position} differs: {entries}")
        summary.append(
            {
                "method": first["method"],
                "alpha": first["alpha"],
                "calibrated_seeds": sum(entry["rule"] is not None for entry in entries),
                **{name: _mean_and_std([entry[name] for entry in entries]) for name in EARLY_EXIT_METRICS},
            }
        )
    return summary
