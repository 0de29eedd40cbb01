"""What spikemax-bench shows and writes: progress, the results table, verdicts on the paper's claims, files, plots.

Files written to the output folder:

* ``results.json``: everything (schema below), enough to redraw every table and plot.
* ``results.csv``: one row per framework x loss, the mean and std over seeds of every summary measure.
* ``results.md``: the results table, a verdict on each of the paper's three claims, and the sweep.
* ``accuracy_vs_time.png``, ``spikes_per_sample.png``, ``training_curves.png`` (matplotlib, Agg backend).

``results.json`` keys: ``schema_version``, ``created``, ``command``, ``config``, ``dataset``, ``environment``,
``candidates`` (the sweep grid per loss), ``records`` (one per framework x loss, see
:func:`spikemax_plugins.bench.run.run_benchmark`), ``verdicts`` and ``total_seconds``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .data import silent_progress
from .run import SUMMARY_METRICS, describe_hyper_parameters

__all__ = [
    "SCHEMA_VERSION",
    "ProgressDisplay",
    "environment",
    "verdicts",
    "results_table",
    "results_document",
    "write_results",
]

SCHEMA_VERSION = 1
BASELINE_LOSS = "mse_count"
SPIKEMAX_LOSSES = ("spikemax_g", "spikemax_s")


# ------------------------------------------------------------------------------------------------ progress


class _RichTask:
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task_id, amount)


class ProgressDisplay:
    """Live progress bars on a terminal; elsewhere (CI logs, pipes) one plain line per task and note.

    :meth:`task` has the signature of the data loaders' progress hook, so one display serves data building
    and training. Use as a context manager around the work.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        if console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        """A task of ``total`` steps; the bar disappears when it is done (the notes keep the record)."""
        if self._progress is None:
            self.console.print(f"... {description}", highlight=False)
            with silent_progress(description, total) as task:
                yield task
            return
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _RichTask(self._progress, task_id)
        finally:
            self._progress.remove_task(task_id)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)


# ------------------------------------------------------------------------------------------------ document


def environment(device: str) -> dict[str, Any]:
    """Versions and machine facts that the numbers depend on."""
    versions = {}
    for package in ("torch", "snntorch", "norse", "spikemax-plugins"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if device.startswith("cuda") else None,
    }


@dataclass(frozen=True)
class Claim:
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
        "SpikeMax networks fire fewer spikes (hidden and output neurons, per sample)",
    ),
)


def _comparison(claim: Claim, framework: str, variant: dict, baseline: dict) -> dict[str, Any]:
    ours = variant["summary"][claim.metric]
    theirs = baseline["summary"][claim.metric]
    seeds = len(variant["seeds"])
    if ours["mean"] is None or theirs["mean"] is None:
        outcome = "not measurable"
    else:
        difference = ours["mean"] - theirs["mean"]
        better = difference > 0 if claim.higher_is_better else difference < 0
        noise = math.hypot(ours["std"], theirs["std"])
        if seeds > 1 and abs(difference) <= noise:
            outcome = "within noise"
        else:
            outcome = "holds" if better else "does not hold"
    text = (
        f"{claim.name} ({framework}): {variant['loss']} {_format_measure(claim.metric, ours)} vs "
        f"{BASELINE_LOSS} {_format_measure(claim.metric, theirs)} → {outcome}"
    )
    return {
        "claim": claim.name,
        "metric": claim.metric,
        "framework": framework,
        "loss": variant["loss"],
        "baseline": BASELINE_LOSS,
        "value": ours["mean"],
        "baseline_value": theirs["mean"],
        "outcome": outcome,
        "text": text,
    }


def verdicts(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each of the paper's three claims, tested per framework and SpikeMax variant against ``mse_count``.

    A comparison "holds" when the SpikeMax variant's mean is better than the baseline's; with several seeds a
    difference no larger than the two standard deviations combined is "within noise". The claim's overall
    verdict is "holds" when every comparison holds, "does not hold" when none does, else "mixed". Returns one
    entry per claim (``claim``, ``statement``, ``overall``, ``comparisons``); empty without the baseline or
    a SpikeMax loss.
    """
    by_key = {(record["framework"], record["loss"]): record for record in records}
    frameworks = list(dict.fromkeys(record["framework"] for record in records))
    results = []
    for claim in CLAIMS:
        comparisons = [
            _comparison(claim, framework, by_key[framework, loss], by_key[framework, BASELINE_LOSS])
            for framework in frameworks
            for loss in SPIKEMAX_LOSSES
            if (framework, loss) in by_key and (framework, BASELINE_LOSS) in by_key
        ]
        if not comparisons:
            continue
        holding = sum(comparison["outcome"] == "holds" for comparison in comparisons)
        overall = "holds" if holding == len(comparisons) else "does not hold" if holding == 0 else "mixed"
        results.append(
            {"claim": claim.name, "statement": claim.statement, "overall": overall, "comparisons": comparisons}
        )
    return results


# ------------------------------------------------------------------------------------------------ table


def _format_measure(metric: str, measure: dict[str, float | None]) -> str:
    """One summary measure as text: fractions and accuracies with 3 decimals, counts with 1, std when > 0."""
    mean, std = measure["mean"], measure["std"]
    if mean is None:
        return "n/a"
    if metric in ("accuracy", "no_decision_fraction", "time_to_decision_fraction"):
        digits = 3
    elif metric == "synaptic_operations_per_sample":
        digits = 0
    elif metric == "final_train_loss":
        digits = 4
    else:
        digits = 1
    text = f"{mean:.{digits}f}"
    if std:
        text += f" ± {std:.{digits}f}"
    return text


# (column title, summary metric) of the results table, in order after framework, loss and hyper-parameters.
TABLE_COLUMNS = (
    ("accuracy", "accuracy"),
    ("decision step", "time_to_decision_steps"),
    ("decision at (of T)", "time_to_decision_fraction"),
    ("no decision", "no_decision_fraction"),
    ("output spikes", "output_spikes_per_sample"),
    ("network spikes", "network_spikes_per_sample"),
    ("synaptic ops", "synaptic_operations_per_sample"),
    ("s/epoch", "seconds_per_epoch"),
    ("final train loss", "final_train_loss"),
)


def table_rows(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table, shared by the terminal table and results.md."""
    header = ["framework", "loss", "hyper-parameters", *(title for title, _ in TABLE_COLUMNS)]
    rows = [
        [
            record["framework"],
            record["loss"],
            describe_hyper_parameters(record["hyper_parameters"]),
            *(_format_measure(metric, record["summary"][metric]) for _, metric in TABLE_COLUMNS),
        ]
        for record in records
    ]
    return header, rows


def results_table(document: dict[str, Any]) -> Table:
    """The results as a rich table (per sample, test split; mean ± std over seeds)."""
    dataset = document["dataset"]
    seeds = document["config"]["seeds"]
    table = Table(
        title=f"spikemax-bench on {dataset['name']} (test split, {dataset['sizes']['test']} samples, "
        f"T = {dataset['time_steps']}, {seeds} seed{'s' if seeds > 1 else ''})"
    )
    header, rows = table_rows(document["records"])
    for index, title in enumerate(header):
        # Fold rather than truncate in a narrow terminal: a number cut to "0.9…" would be worse than a tall row.
        table.add_column(title, justify="left" if index < 3 else "right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


# ------------------------------------------------------------------------------------------------ files


def _without_non_finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _without_non_finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_non_finite(item) for item in value]
    return value


def _write_csv(document: dict[str, Any], path: Path) -> None:
    columns = ["framework", "loss", "hyper_parameters", "seeds"]
    for metric in SUMMARY_METRICS:
        columns += [f"{metric}_mean", f"{metric}_std"]
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for record in document["records"]:
            row = [record["framework"], record["loss"], json.dumps(record["hyper_parameters"]), len(record["seeds"])]
            for metric in SUMMARY_METRICS:
                row += [record["summary"][metric]["mean"], record["summary"][metric]["std"]]
            writer.writerow(["" if value is None else value for value in row])


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _write_markdown(document: dict[str, Any], path: Path) -> None:
    config, dataset = document["config"], document["dataset"]
    sizes = dataset["sizes"]
    lines = [
        f"# spikemax-bench: {dataset['name']}",
        "",
        f"{dataset['description']}",
        "",
        f"Splits: {sizes['train']} train, {sizes['validation']} validation, {sizes['test']} test samples; "
        f"T = {dataset['time_steps']} steps; {dataset['num_classes']} classes. Network: {config['architecture']}, "
        f"{config['hidden_size']} hidden LIF neurons; Adam, learning rate {config['learning_rate']:g}, batch "
        f"{config['batch_size']}, {config['epochs']} epochs; {config['seeds']} seed(s); device {config['device']}.",
        "",
        "## Results (test split, per sample; mean ± std over seeds)",
        "",
        *_markdown_table(*table_rows(document["records"])),
        "",
        "Decision step: mean first step (0-based) from which the running spike-count prediction never changes, "
        "over the samples with a decision; decision at (of T): (step + 1) / T. Network spikes: hidden and output "
        "neurons. Synaptic operations: input and hidden spikes times their fan-out.",
        "",
        "## The paper's claims (SpikeMax vs the MSE spike-count loss)",
        "",
    ]
    if not document["verdicts"]:
        lines.append(f"Not tested: the run needs {BASELINE_LOSS} and spikemax_g or spikemax_s.")
    for verdict in document["verdicts"]:
        lines.append(f"- **{verdict['claim']}: {verdict['overall']}.** {verdict['statement']}.")
        lines += [f"  - {comparison['text']}" for comparison in verdict["comparisons"]]
    lines += [
        "",
        "## Hyper-parameter sweep (validation split, first seed)",
        "",
    ]
    sweep_rows = [
        [
            record["framework"],
            record["loss"],
            describe_hyper_parameters(entry["hyper_parameters"]),
            f"{entry['validation_accuracy']:.3f}",
            "yes" if entry["hyper_parameters"] == record["hyper_parameters"] else "",
        ]
        for record in document["records"]
        for entry in record["sweep"]
    ]
    lines += _markdown_table(["framework", "loss", "candidate", "validation accuracy", "chosen"], sweep_rows)
    path.write_text("\n".join(lines) + "\n")


def _write_plots(document: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = document["records"]
    frameworks = list(dict.fromkeys(record["framework"] for record in records))
    losses = list(dict.fromkeys(record["loss"] for record in records))
    by_key = {(record["framework"], record["loss"]): record for record in records}
    colours = {loss: f"C{index}" for index, loss in enumerate(losses)}
    written = []

    figure, axes = plt.subplots(1, len(frameworks), figsize=(5.5 * len(frameworks), 4), squeeze=False, sharey=True)
    for axis, framework in zip(axes[0], frameworks, strict=True):
        for loss in losses:
            curve = by_key[framework, loss]["summary"]["accuracy_over_time"]
            mean, std = torch.tensor(curve["mean"]), torch.tensor(curve["std"])
            steps = torch.arange(1, len(mean) + 1)
            axis.plot(steps, mean, label=loss, color=colours[loss])
            axis.fill_between(steps, mean - std, mean + std, color=colours[loss], alpha=0.2)
        axis.set(title=framework, xlabel="time step", ylim=(0, 1))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy of the running prediction")
    axes[0][-1].legend(loc="lower right")
    written.append(_save(figure, out_dir / "accuracy_vs_time.png"))

    panels = (
        ("output_spikes_per_sample", "output spikes per sample"),
        ("network_spikes_per_sample", "network spikes per sample"),
        ("synaptic_operations_per_sample", "synaptic operations per sample"),
    )
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    width = 0.8 / len(losses)
    for axis, (metric, title) in zip(axes[0], panels, strict=True):
        for index, loss in enumerate(losses):
            measures = [by_key[framework, loss]["summary"][metric] for framework in frameworks]
            positions = [position + (index - (len(losses) - 1) / 2) * width for position in range(len(frameworks))]
            axis.bar(
                positions,
                [measure["mean"] for measure in measures],
                width,
                yerr=[measure["std"] for measure in measures],
                label=loss,
                color=colours[loss],
            )
        axis.set_xticks(range(len(frameworks)), frameworks)
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend()
    written.append(_save(figure, out_dir / "spikes_per_sample.png"))

    figure, axes = plt.subplots(2, len(frameworks), figsize=(5.5 * len(frameworks), 7), squeeze=False)
    for column, framework in enumerate(frameworks):
        for loss in losses:
            seed_curves = [seed["curves"] for seed in by_key[framework, loss]["seeds"]]
            epochs = torch.arange(1, len(seed_curves[0]["train_loss"]) + 1)
            for row, key in enumerate(("train_loss", "validation_accuracy")):
                mean = torch.tensor([curves[key] for curves in seed_curves]).mean(0)
                axes[row][column].plot(epochs, mean, marker="o", label=loss, color=colours[loss])
        axes[0][column].set(title=framework, yscale="log", ylabel="training loss (each loss its own scale)")
        axes[1][column].set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1))
        for row in range(2):
            axes[row][column].grid(alpha=0.3)
    axes[1][-1].legend(loc="lower right")
    written.append(_save(figure, out_dir / "training_curves.png"))
    return written


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_results(document: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write results.json, results.csv, results.md and the three plots into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(_without_non_finite(document), indent=2, allow_nan=False) + "\n")
    csv_path = out_dir / "results.csv"
    _write_csv(document, csv_path)
    markdown_path = out_dir / "results.md"
    _write_markdown(document, markdown_path)
    return [json_path, csv_path, markdown_path, *_write_plots(document, out_dir)]


def results_document(
    *,
    config: dict[str, Any],
    dataset: Any,
    records: list[dict[str, Any]],
    candidates: dict[str, list[dict[str, Any]]],
    command: list[str],
    total_seconds: float,
) -> dict[str, Any]:
    """The content of results.json (see the module docstring); ``dataset`` is the first seed's SpikeDataset."""
    return {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "config": config,
        "dataset": {
            "name": dataset.name,
            "kind": dataset.kind,
            "description": dataset.description,
            "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes,
            "class_names": list(dataset.class_names),
            "time_steps": dataset.time_steps,
            "sizes": {split: len(getattr(dataset, split)) for split in ("train", "validation", "test")},
        },
        "environment": environment(config["device"]),
        "candidates": candidates,
        "records": records,
        "verdicts": verdicts(records),
        "total_seconds": total_seconds,
    }
