"""Text of the results: numbers, tables, claims, as Markdown blocks and table rows for the terminal.

Everything here is a pure function of a ``results.json`` document: the same document always renders to the same
text (no clock, no machine state), which is what lets ``python -m spikemax_bench.publish --check`` prove
that the README and the docs show the committed results. The blocks are assembled here from the values and table
rows of :mod:`.rows` and the early-exit text of :mod:`.early_exit`.

Markdown blocks (:data:`BLOCKS`), each usable between markers in any Markdown file:

* ``summary``: what was run (command, data, network, training, sweep, seeds) and where (time, versions, CPU,
  commit).
* ``table``: accuracy, decision time, spikes per framework x loss (test split, mean ± std over seeds).
* ``energy``: the spikes and synaptic operations a loss can change (hidden and output layers), apart from the
  input's, which every loss sees alike.
* ``claims``: the paired verdict on each of the paper's claims.
* ``sweep``: every candidate's validation accuracy, and the choice.
* ``training``: final training loss and seconds per epoch.
* ``early-exit``: per framework x loss, early exit with the headline rule (calibrated on validation to lose at
  most 1 point of accuracy there): test accuracy with and without it, and the shares of time steps, synaptic
  operations and spikes it uses; and the coverage of the conformal rule.
* ``early-exit-summary``: the same as one generated sentence per framework x loss ("at ≤ 1 point accuracy loss
  ..., loss X needs a% of the time steps and b% of the synaptic operations").
* ``per-decision``: per framework x loss, the compute one decision costs (network calls, sample-steps, synaptic
  operations, spikes), full window → early exit through the engine.
* ``activity-penalty``: accuracy and synaptic operations and spikes per decision for every activity penalty λ.
* ``energy-claim``: the energy claim at matched accuracy, paired by seed, and how the λ were matched.
* ``energy-plot``: the accuracy-versus-synaptic-operations figure (runs with per-decision measures only).
* ``plots`` (all four figures), ``accuracy-plot``, ``spikes-plot``, ``training-plot``, ``early-exit-plot``: image
  references.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..verdicts import BASELINE_LOSS, CONFIDENCE, NOT_TESTED, SPIKEMAX_LOSSES
from .early_exit import early_exit_note, early_exit_rows, early_exit_summary_lines, rule_summary
from .energy import (
    NOT_MEASURED,
    activity_penalty_rows,
    energy_claim_lines,
    has_per_decision,
    per_decision_note,
    per_decision_rows,
)
from .rows import (
    ENERGY_PLOT,
    PLOTS,
    SMOKE_BANNER,
    SMOKE_PREFIX,
    chosen_text,
    energy_rows,
    format_measure,
    format_value,
    input_activity_line,
    is_quick,
    markdown_table,
    results_rows,
    run_description,
    run_title,
    seed_count,
    training_rows,
)

__all__ = [
    "BLOCKS",
    "ENERGY_PLOT",
    "PLOTS",
    "SMOKE_PREFIX",
    "early_exit_rows",
    "early_exit_summary_lines",
    "energy_rows",
    "format_measure",
    "format_value",
    "render_block",
    "results_markdown",
    "results_rows",
    "run_description",
    "rule_summary",
    "run_title",
    "training_rows",
]

def comparison_text(verdict: dict[str, Any], comparison: dict[str, Any]) -> str:
    """One comparison of a claim in words, e.g. "snntorch, spikemax_g vs mse_count: 0.907 vs 0.895, difference
    +0.012 (95 % CI +0.004 to +0.020, 5 paired seeds): holds"."""
    metric = verdict["metric"]
    text = (
        f"{comparison['framework']}, {comparison['loss']} vs {comparison['baseline']}: "
        f"{format_value(metric, comparison['value'])} vs {format_value(metric, comparison['baseline_value'])}"
    )
    if comparison["ci95"] is not None:
        low, high = comparison["ci95"]
        low_text, high_text = format_value(metric, low, signed=True), format_value(metric, high, signed=True)
        text += (
            f", difference {format_value(metric, comparison['difference'], signed=True)} "
            f"({CONFIDENCE:.0%} CI {low_text} to {high_text}, {comparison['pairs']} paired seeds)"
        )
    elif comparison["outcome"] == NOT_TESTED:
        text += " (one seed: no confidence interval)"
    return f"{text}: {comparison['outcome']}"


def claims_lines(document: dict[str, Any]) -> list[str]:
    """The claims as a Markdown list: each claim's overall outcome, then one line per comparison."""
    if is_quick(document):
        return [f"{SMOKE_BANNER} No verdict on the paper's claims."]
    if not document["verdicts"]:
        return [f"Not tested: the run needs {BASELINE_LOSS} and {' or '.join(SPIKEMAX_LOSSES)} in one framework."]
    lines = []
    if seed_count(document) < 2:
        lines += ["One seed: no comparison is tested (a verdict needs a confidence interval, `--seeds` >= 2).", ""]
    for verdict in document["verdicts"]:
        lines.append(f"- **{verdict['claim']}: {verdict['overall']}.** {verdict['statement']}.")
        lines += [f"  - {comparison_text(verdict, comparison)}" for comparison in verdict["comparisons"]]
    if seed_count(document) >= 2:
        lines += [
            "",
            f"Each comparison pairs the seeds (every loss starts from the same weights and sees the same data order "
            f"per seed): the mean per-seed difference with its {CONFIDENCE:.0%} Student-t confidence interval. "
            f"\"holds\": the interval excludes zero in the claimed direction; \"no difference shown\": it contains "
            f"zero; \"contradicted\": it excludes zero in the other direction.",
        ]
    return lines


def sweep_lines(document: dict[str, Any]) -> list[str]:
    """Every candidate's pooled validation accuracy and the choice, or a line saying there was no sweep."""
    records = [record for record in document["records"] if record["sweep"] is not None]
    if not records:
        return ["No sweep: every loss used its default hyper-parameters at the first learning rate."]
    first = records[0]["sweep"]
    seeds = len(first["seeds"])
    per_seed_header = [f"seed {seed}" for seed in first["seeds"]] if seeds > 1 else []
    rows = []
    for record in records:
        for candidate in record["sweep"]["candidates"]:
            rows.append(
                [
                    record["framework"],
                    record["loss"],
                    chosen_text(candidate, document),
                    format_value("validation_accuracy", candidate["validation_accuracy"]),
                    *(
                        format_value("validation_accuracy", entry["validation_accuracy"])
                        for entry in (candidate["per_seed"] if seeds > 1 else [])
                    ),
                    "yes" if candidate["chosen"] else "",
                ]
            )
    header = ["framework", "loss", "candidate", "validation accuracy", *per_seed_header, "chosen"]
    margin = first["tie_margin"]
    if seeds > 1:
        scoring = (
            f"Each candidate trains with seeds {', '.join(str(seed) for seed in first['seeds'])} (each seed its own "
            "validation split); its score is the validation accuracy pooled over them."
        )
    else:
        scoring = f"Each candidate trains with seed {first['seeds'][0]}; its score is its validation accuracy."
    return [
        f"Validation split only. {scoring} The earliest candidate within "
        f"{margin:g} of the best score is chosen (the loss's usual default is listed first), so a difference of a "
        "sample or two, which float rounding can cause between machines, cannot change the choice. Every loss gets "
        "the same number of candidates, seeds and epochs.",
        "",
        *markdown_table(header, rows),
    ]


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What was run and where, in one paragraph."""
    config, dataset, provenance = document["config"], document["dataset"], document["provenance"]
    sizes = dataset["sizes"]
    grid = document["candidates"]
    candidates = len(next(iter(grid.values()))) if grid else 0
    learning_rates = ", ".join(f"{rate:g}" for rate in config["learning_rates"])
    if config["sweep"] and candidates > 1:
        plural = "s" if len(config["learning_rates"]) > 1 else ""
        sweep = (
            f"sweep of {candidates} candidates per loss (learning rate{plural} {learning_rates}) over "
            f"{config['sweep_seeds']} seed{'s' if config['sweep_seeds'] > 1 else ''}"
        )
    else:
        sweep = f"no sweep (each loss's default, learning rate {config['learning_rates'][0]:g})"
    packages = ", ".join(f"{name} {version}" for name, version in provenance["packages"].items() if version)
    minutes, seconds = divmod(round(provenance["wall_seconds"]), 60)
    commit = provenance["git"]["commit"]
    commit_text = commit[:12] if commit != "unknown" else "unknown"
    if provenance["git"].get("dirty"):
        commit_text += " with uncommitted changes"
    hardware = provenance["cpu"] + (f", GPU {provenance['gpu']}" if provenance.get("gpu") else "")
    lines = [SMOKE_BANNER, ""] if is_quick(document) else []
    lines.append(
        f"`{provenance['command']}`: {dataset['name']}, {sizes['train']} train / {sizes['validation']} validation / "
        f"{sizes['test']} test samples, T = {dataset['time_steps']}, {dataset['num_classes']} classes; "
        f"{config['architecture']} network with {config['hidden_size']} hidden LIF neurons, Adam, batch "
        f"{config['batch_size']}, {config['epochs']} epoch{'s' if config['epochs'] > 1 else ''} per training; "
        f"{sweep}; {config['seeds']} test seed{'s' if config['seeds'] > 1 else ''}, device {config['device']}. "
        f"Took {minutes} min {seconds:02d} s on {hardware} ({provenance['torch_threads']} torch "
        f"thread{'s' if provenance['torch_threads'] > 1 else ''}, {provenance['world_size']} "
        f"process{'es' if provenance['world_size'] > 1 else ''}); {packages}; commit {commit_text}."
    )
    return lines


def _table_lines(document: dict[str, Any], rows: tuple[list[str], list[list[str]]], note: str) -> list[str]:
    lines = [f"**{run_title(document)}**", "", *markdown_table(*rows)]
    return [*lines, "", note] if note else lines


RESULTS_NOTE = (
    "Steps to decision: the number of time steps seen when the running spike-count prediction settles for good "
    "(mean over the samples with a decision); decision at: the same as a share of T. No decision: share of samples "
    "whose final counts tie. Network spikes: hidden and output neurons, per sample."
)


def _plot_lines(document: dict[str, Any], names: Sequence[str], image_dir: str) -> list[str]:
    prefix = "" if image_dir in ("", ".") else image_dir.rstrip("/") + "/"
    smoke = " (smoke run, not a result)" if is_quick(document) else ""
    lines = []
    for name in names:
        file_name, alt = PLOTS[name]
        lines += [f"![{alt}{smoke}]({prefix}{file_name})", ""]
    return lines[:-1]


def _measured(lines: Callable[[dict[str, Any], str], list[str]]) -> Callable[[dict[str, Any], str], list[str]]:
    """A block that needs the per-decision measures: a sentence saying so for runs recorded without them."""
    return lambda document, image_dir: lines(document, image_dir) if has_per_decision(document) else [NOT_MEASURED]


def _energy_plot_lines(document: dict[str, Any], image_dir: str) -> list[str]:
    prefix = "" if image_dir in ("", ".") else image_dir.rstrip("/") + "/"
    smoke = " (smoke run, not a result)" if is_quick(document) else ""
    return [f"![{ENERGY_PLOT[1]}{smoke}]({prefix}{ENERGY_PLOT[0]})"]


BLOCKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "summary": lambda document, image_dir: summary_lines(document),
    "table": lambda document, image_dir: _table_lines(document, results_rows(document), RESULTS_NOTE),
    "energy": lambda document, image_dir: _table_lines(document, energy_rows(document), input_activity_line(document)),
    "claims": lambda document, image_dir: claims_lines(document),
    "sweep": lambda document, image_dir: sweep_lines(document),
    "training": lambda document, image_dir: _table_lines(document, training_rows(document), ""),
    "early-exit": lambda document, image_dir: _table_lines(
        document, early_exit_rows(document), early_exit_note(document)
    ),
    "early-exit-summary": lambda document, image_dir: early_exit_summary_lines(document),
    "per-decision": _measured(
        lambda document, image_dir: _table_lines(document, per_decision_rows(document), per_decision_note(document))
    ),
    "activity-penalty": _measured(
        lambda document, image_dir: _table_lines(document, activity_penalty_rows(document), "")
    ),
    "energy-claim": lambda document, image_dir: energy_claim_lines(document),
    "energy-plot": _measured(_energy_plot_lines),
    "plots": lambda document, image_dir: _plot_lines(document, list(PLOTS), image_dir),
    **{
        name: (lambda document, image_dir, name=name: _plot_lines(document, [name], image_dir))
        for name in PLOTS
    },
}


def render_block(kind: str, document: dict[str, Any], *, image_dir: str = "") -> str:
    """The Markdown of block ``kind`` (one of :data:`BLOCKS`) for ``document``, without a final newline.

    ``image_dir``: the folder holding the run's plots, relative to the Markdown file the block goes into.
    """
    if kind not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}; got {kind!r}")
    return "\n".join(BLOCKS[kind](document, image_dir))


def results_markdown(document: dict[str, Any]) -> str:
    """The whole ``results.md`` of a run folder (the plots sit beside it)."""
    quick = is_quick(document)
    heading = f"# spikemax-bench{' smoke run' if quick else ''}: {document['dataset']['name']}"
    sections = [
        heading,
        render_block("summary", document),
        f"## Results{' (smoke run, not a result)' if quick else ''}",
        render_block("table", document),
        render_block("accuracy-plot", document),
        "## Spikes and synaptic operations the loss can change",
        render_block("energy", document),
        render_block("spikes-plot", document),
        "## The paper's claims (SpikeMax vs the MSE spike-count loss)",
        render_block("claims", document),
        "## Early exit",
        render_block("early-exit", document),
        render_block("early-exit-summary", document),
        render_block("early-exit-plot", document),
        "## Compute per decision",
        render_block("per-decision", document),
        *(
            [
                "## Energy per decision across activity penalties",
                render_block("activity-penalty", document),
                render_block("energy-plot", document),
                "## The energy claim at matched accuracy",
                render_block("energy-claim", document),
            ]
            if has_per_decision(document)
            else []
        ),
        "## Hyper-parameter sweep",
        render_block("sweep", document),
        "## Training",
        render_block("training", document),
        render_block("training-plot", document),
        f"Data set: {document['dataset']['description'].rstrip('.')}.",
    ]
    return "\n\n".join(sections) + "\n"
