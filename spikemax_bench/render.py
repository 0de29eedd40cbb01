"""Text of the results: numbers, tables, claims, as Markdown blocks and table rows for the terminal.

Everything here is a pure function of a ``results.json`` document: the same document always renders to the same
text (no clock, no machine state), which is what lets ``python -m spikemax_bench.publish --check`` prove
that the README and the docs show the committed results.

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
* ``plots`` (all four figures), ``accuracy-plot``, ``spikes-plot``, ``training-plot``, ``early-exit-plot``: image
  references.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from spikemax_plugins import early_exit

from .measures import COVERAGE_RULE, HEADLINE_RULE
from .sweep import describe_hyper_parameters
from .verdicts import BASELINE_LOSS, CONFIDENCE, NOT_TESTED, SPIKEMAX_LOSSES

__all__ = [
    "BLOCKS",
    "PLOTS",
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
_NO_DECIMALS = {
    "synaptic_operations_per_sample",
    "hidden_synaptic_operations_per_sample",
    "input_synaptic_operations_per_sample",
}


def _digits(metric: str) -> int:
    if metric in _THREE_DECIMALS:
        return 3
    if metric in _NO_DECIMALS:
        return 0
    if metric == "final_train_loss":
        return 4
    return 1


def format_value(metric: str, value: float | None, *, signed: bool = False) -> str:
    """One number of ``metric`` as text: accuracies and shares with 3 decimals, operations with none, losses 4,
    counts and steps 1; "n/a" for None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:{'+' if signed else ''}.{_digits(metric)}f}"


def format_measure(metric: str, measure: dict[str, float | None]) -> str:
    """``{"mean", "std"}`` of ``metric`` as ``"mean ± std"`` (just the mean when std is 0 or None)."""
    text = format_value(metric, measure["mean"])
    if measure["mean"] is not None and measure["std"]:
        text += f" ± {format_value(metric, measure['std'])}"
    return text


def _seeds(document: dict[str, Any]) -> int:
    return document["config"]["seeds"]


def _is_quick(document: dict[str, Any]) -> bool:
    return bool(document["config"].get("quick"))


def run_description(document: dict[str, Any]) -> str:
    """Data set, test split, T and seeds of the run, e.g. "digits-dvs, test split (359 samples), T = 30, 5 seeds,
    mean ± std over seeds"."""
    dataset = document["dataset"]
    seeds = _seeds(document)
    return (
        f"{dataset['name']}, test split ({dataset['sizes']['test']} samples), T = {dataset['time_steps']}, "
        f"{seeds} seed{'s' if seeds > 1 else ''}{', mean ± std over seeds' if seeds > 1 else ''}"
    )


SMOKE_PREFIX = "SMOKE RUN (--quick), not a result: "


def run_title(document: dict[str, Any]) -> str:
    """:func:`run_description`, preceded by :data:`SMOKE_PREFIX` for a ``--quick`` run."""
    return f"{SMOKE_PREFIX if _is_quick(document) else ''}{run_description(document)}"


def _learning_rate_swept(document: dict[str, Any]) -> bool:
    """Whether the run chose among several learning rates (then each candidate names its rate)."""
    return bool(document["config"]["sweep"]) and len(document["config"]["learning_rates"]) > 1


def _chosen(record: dict[str, Any], document: dict[str, Any]) -> str:
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
            *([_chosen(record, document)] if hyper_parameters else []),
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
    if _is_quick(document):
        return [f"{SMOKE_BANNER} No verdict on the paper's claims."]
    if not document["verdicts"]:
        return [f"Not tested: the run needs {BASELINE_LOSS} and {' or '.join(SPIKEMAX_LOSSES)} in one framework."]
    lines = []
    if _seeds(document) < 2:
        lines += ["One seed: no comparison is tested (a verdict needs a confidence interval, `--seeds` >= 2).", ""]
    for verdict in document["verdicts"]:
        lines.append(f"- **{verdict['claim']}: {verdict['overall']}.** {verdict['statement']}.")
        lines += [f"  - {comparison_text(verdict, comparison)}" for comparison in verdict["comparisons"]]
    if _seeds(document) >= 2:
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
                    _chosen(candidate, document),
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
    lines = [SMOKE_BANNER, ""] if _is_quick(document) else []
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
    seeds = _seeds(document)
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
    seeds = _seeds(document)
    over = f", mean over {seeds} seeds" if seeds > 1 else ""
    lines = [
        f"Early exit on the test split, with the rule calibrated on the validation split to lose at most "
        f"{_headline_loss()} of accuracy there ({document['dataset']['name']}{over}):",
        "",
    ]
    if _is_quick(document):
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
    smoke = " (smoke run, not a result)" if _is_quick(document) else ""
    lines = []
    for name in names:
        file_name, alt = PLOTS[name]
        lines += [f"![{alt}{smoke}]({prefix}{file_name})", ""]
    return lines[:-1]


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
    quick = _is_quick(document)
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
        "## Hyper-parameter sweep",
        render_block("sweep", document),
        "## Training",
        render_block("training", document),
        render_block("training-plot", document),
        f"Data set: {document['dataset']['description'].rstrip('.')}.",
    ]
    return "\n\n".join(sections) + "\n"
