"""What the terminal shows after a run: four rich tables that fit 100 columns, then the verdicts."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from ..measures import COVERAGE_RULE, HEADLINE_RULE
from ..render import (
    comparison_text,
    early_exit_rows,
    energy_rows,
    input_activity_line,
    results_rows,
    run_title,
    training_rows,
)

__all__ = ["terminal_report"]

TERMINAL_RESULTS_COLUMNS = 4  # accuracy, steps to decision, decision at, no decision


def _terminal_table(
    title: str, header: list[str], rows: list[list[str]], caption: str | None = None, *, compact: bool = False
) -> Table:
    """A rich table whose cells never break inside a word: each column is at least as wide as its widest value,
    headers wrap at spaces, and the hyper-parameters wrap between parameters only. ``compact``: no column wider
    than its widest value or header word (the headers wrap instead), for tables with many columns."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for index, name in enumerate(header):
        values = [row[index] for row in rows]
        if name == "hyper-parameters":
            widest = max((len(word) for value in values for word in value.split()), default=1)
        else:
            widest = max((len(value) for value in values), default=1)
        maximum = max(widest, *(len(word) for word in name.split())) if compact else None
        table.add_column(
            name,
            justify="left" if index < 2 or name == "hyper-parameters" else "right",
            min_width=widest,
            max_width=maximum,
        )
    for row in rows:
        table.add_row(*row)
    return table


def _early_exit_caption(document: dict[str, Any]) -> str:
    seeds = document["config"]["seeds"]
    means = f"Means over {seeds} seeds (± std in results.md). " if seeds > 1 else ""
    return (
        f"{means}Used: time steps, synaptic operations driven by hidden spikes, all synaptic operations, hidden "
        f"and output spikes, up to each sample's exit. Coverage: conformal rule, alpha = {COVERAGE_RULE[1]:g} "
        f"(guaranteed >= {1 - COVERAGE_RULE[1]:g}). Every alpha: early_exit.png."
    )


def terminal_report(document: dict[str, Any]) -> list[Any]:
    """What the terminal shows after a run: four tables that fit 100 columns, then the verdicts.

    Returns rich renderables (tables and lines of text) in order.
    """
    title = run_title(document)
    # Accuracy and decision columns only: with the spikes too the table would not fit 100 columns.
    columns = 2 + TERMINAL_RESULTS_COLUMNS
    header, rows = results_rows(document, hyper_parameters=False)
    results_header, results_body = header[:columns], [row[:columns] for row in rows]
    output: list[Any] = [
        _terminal_table(f"{title}: accuracy and decisions", results_header, results_body),
        _terminal_table(
            "Spikes and synaptic operations per sample that the loss can change", *energy_rows(document),
            caption=input_activity_line(document),
        ),
        _terminal_table(
            f"Early exit at ≤ {HEADLINE_RULE[1] * 100:g} point accuracy loss on validation (rule "
            f"{HEADLINE_RULE[0]}, alpha = {HEADLINE_RULE[1]:g}): test accuracy and the share of the full window used",
            *early_exit_rows(document, terminal=True),
            caption=_early_exit_caption(document),
            compact=True,
        ),
        _terminal_table("Chosen hyper-parameters and training", *training_rows(document)),
    ]
    if document["config"].get("quick"):
        output.append(Text("SMOKE RUN (--quick): no verdict on the paper's claims.", style="bold"))
        return output
    for verdict in document["verdicts"]:
        output.append(Text(f"{verdict['claim']}: {verdict['overall']}", style="bold"))
        output += [Text(f"  {comparison_text(verdict, comparison)}") for comparison in verdict["comparisons"]]
    return output
