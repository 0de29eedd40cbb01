"""results.csv: one row per framework x loss, the mean and std over seeds of every summary measure."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..measures import COVERAGE_RULE, HEADLINE_RULE
from ..render import rule_summary
from ..summary import SUMMARY_METRICS

__all__ = ["CSV_EARLY_EXIT_COLUMNS", "csv_text"]


# (rule, measure, column) of the early-exit columns of results.csv: the headline rule and the conformal coverage.
CSV_EARLY_EXIT_COLUMNS = (
    *((HEADLINE_RULE, metric, f"early_exit_{metric}") for metric in (
        "accuracy", "exit_fraction", "hidden_synaptic_operations_share", "synaptic_operations_share",
        "network_spikes_share",
    )),
    (COVERAGE_RULE, "coverage", "conformal_coverage"),
)  # fmt: skip


def csv_text(document: dict[str, Any]) -> str:
    """results.csv: a header, then one row per framework x loss with the mean and std of every summary measure,
    and of the early-exit measures of :data:`CSV_EARLY_EXIT_COLUMNS`."""
    columns = ["framework", "loss", "hyper_parameters", "learning_rate", "seeds"]
    for metric in SUMMARY_METRICS:
        columns += [f"{metric}_mean", f"{metric}_std"]
    for _, _, name in CSV_EARLY_EXIT_COLUMNS:
        columns += [f"{name}_mean", f"{name}_std"]
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    for record in document["records"]:
        row = [
            record["framework"],
            record["loss"],
            json.dumps(record["hyper_parameters"]),
            record["learning_rate"],
            len(record["seeds"]),
        ]
        for metric in SUMMARY_METRICS:
            row += [record["summary"][metric]["mean"], record["summary"][metric]["std"]]
        for rule, metric, _ in CSV_EARLY_EXIT_COLUMNS:
            measure = (rule_summary(record, rule) or {}).get(metric, {"mean": None, "std": None})
            row += [measure["mean"], measure["std"]]
        writer.writerow(["" if value is None else value for value in row])
    return stream.getvalue()
