"""What spikemax-bench shows and writes: progress, the terminal tables, results.json and the files derived from it.

Files written to the output folder (see :meth:`spikemax_bench.store.RunStore.publish` for the order):

* ``results.json``: everything (schema below), enough to redraw every table and plot.
* ``results.csv``: one row per framework x loss, the mean and std over seeds of every summary measure.
* ``results.md``: :func:`spikemax_bench.render.results_markdown` of results.json.
* ``accuracy_vs_time.png``, ``spikes_per_sample.png``, ``training_curves.png``, ``early_exit.png`` (matplotlib,
  Agg backend).

``results.json`` keys: ``schema_version``, ``provenance`` (:func:`spikemax_bench.provenance.provenance`),
``config``, ``dataset``, ``candidates`` (the sweep grid per loss), ``records`` (one per framework x loss, see
:func:`spikemax_bench.run.run_benchmark`) and ``verdicts``
(:func:`spikemax_bench.verdicts.verdicts`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .data import ProgressTask, silent_progress
from .measures import COVERAGE_RULE, HEADLINE_RULE
from .render import (
    PLOTS,
    SMOKE_PREFIX,
    comparison_text,
    early_exit_rows,
    energy_rows,
    input_activity_line,
    results_markdown,
    results_rows,
    rule_summary,
    run_description,
    run_title,
    training_rows,
)
from .store import atomic_write_bytes, atomic_write_text
from .summary import SUMMARY_METRICS
from .sweep import Candidate
from .verdicts import verdicts

__all__ = [
    "SCHEMA_VERSION",
    "ProgressDisplay",
    "accuracy_figure",
    "activity_figure",
    "early_exit_figure",
    "training_figure",
    "csv_text",
    "results_document",
    "terminal_report",
    "write_derived",
    "write_plots",
]

# 3: per seed ``early_exit`` (the calibrated rules and their test measures) and its summary; provenance.world_size.
SCHEMA_VERSION = 3
TERMINAL_RESULTS_COLUMNS = 4  # accuracy, steps to decision, decision at, no decision


# ------------------------------------------------------------------------------------------------ progress


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class _RemainingColumn(ProgressColumn):
    """Time left at the average speed so far (rich's own column averages only the last 30 s)."""

    def render(self, task: Task) -> Text:
        if not task.completed or task.total is None or task.elapsed is None:
            return Text("-:--:-- left", style="progress.remaining")
        remaining = task.elapsed / task.completed * (task.total - task.completed)
        return Text(f"{_clock(remaining)} left", style="progress.remaining")


class _BarTask:
    """One bar of a rich Progress, as a :class:`~spikemax_bench.data.ProgressTask`."""

    def __init__(self, progress: Progress, task_id: Any) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task_id, amount)


class _Training:
    """The task of one training: advances its own bar and the overall one."""

    def __init__(self, display: ProgressDisplay, task_id: Any) -> None:
        self._display = display
        self._task_id = task_id

    def advance(self, amount: int = 1) -> None:
        self._display._advance(self._task_id, amount)


class ProgressDisplay:
    """Progress on a terminal (an overall bar, run k of N, above one bar per training and per data build);
    elsewhere (CI logs, pipes) one plain line per training, with elapsed and estimated remaining time.

    It is the :class:`~spikemax_bench.cells.Monitor` of the run, and :meth:`task` is the data loaders'
    progress hook. Use as a context manager around the work.
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
                _RemainingColumn(),
                console=console,
            )
        self._overall: Any = None
        self._trainings = 0
        self._index = 0
        self._batches = 0
        self._batches_done = 0
        self._started = time.perf_counter()

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def plan(self, trainings: int, batches: int, finished: int) -> None:
        """Start the overall count: ``trainings`` of ``batches`` batches in all; ``finished`` resumed ones."""
        self._trainings, self._batches, self._index, self._batches_done = trainings, batches, 0, 0
        self._started = time.perf_counter()
        if finished:
            self.note(f"resuming: {finished} training(s) already finished, {trainings} to go")
        if self._progress is not None:
            self._overall = self._progress.add_task(f"run 0 of {trainings}", total=max(batches, 1))

    def _remaining(self) -> str:
        if not self._batches_done:
            return "unknown"
        elapsed = time.perf_counter() - self._started
        return _clock(elapsed / self._batches_done * (self._batches - self._batches_done))

    def _advance(self, task_id: Any, amount: int) -> None:
        self._batches_done += amount
        if self._progress is not None:
            self._progress.advance(task_id, amount)
            if self._overall is not None:
                self._progress.advance(self._overall, amount)

    @contextlib.contextmanager
    def training(self, description: str, batches: int) -> Iterator[ProgressTask]:
        """One training's progress task (advanced per batch); it also moves the overall bar."""
        self._index += 1
        header = f"run {self._index} of {self._trainings}"
        if self._progress is None:
            elapsed = _clock(time.perf_counter() - self._started)
            self.console.print(
                f"[{header}] {description} (elapsed {elapsed}, about {self._remaining()} left)",
                highlight=False,
                markup=False,
                soft_wrap=True,  # one line per event in a log, however long
            )
            yield _Training(self, None)
            return
        if self._overall is not None:
            self._progress.update(self._overall, description=header)
        task_id = self._progress.add_task(f"  {description}", total=batches)
        try:
            yield _Training(self, task_id)
        finally:
            self._progress.remove_task(task_id)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        """A task of ``total`` steps (building data); the bar disappears when it is done."""
        if self._progress is None:
            self.console.print(f"... {description}", highlight=False, markup=False, soft_wrap=True)
            with silent_progress(description, total) as task:
                yield task
            return
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _BarTask(self._progress, task_id)
        finally:
            self._progress.remove_task(task_id)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------------ terminal


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


# ------------------------------------------------------------------------------------------------ files


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


def write_derived(document: dict[str, Any], out_dir: Path) -> Iterator[Path]:
    """Write results.csv, results.md and the plots from ``document`` into ``out_dir``, each atomically.

    Yields each path once it is written (a generator, so that an interruption still tells what was written).
    """
    path = out_dir / "results.csv"
    atomic_write_text(path, csv_text(document))
    yield path
    path = out_dir / "results.md"
    atomic_write_text(path, results_markdown(document))
    yield path
    yield from write_plots(document, out_dir)


class _PlotContext:
    """What every figure of a run needs: frameworks, losses, colours, the seeds' spread, the smoke label."""

    def __init__(self, document: dict[str, Any]) -> None:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        records = document["records"]
        self.frameworks = list(dict.fromkeys(record["framework"] for record in records))
        self.losses = list(dict.fromkeys(record["loss"] for record in records))
        self.by_key = {(record["framework"], record["loss"]): record for record in records}
        self.colours = {loss: f"C{index}" for index, loss in enumerate(self.losses)}
        seeds = document["config"]["seeds"]
        self.seeds = seeds
        self.spread = f"±1 std over {seeds} seeds" if seeds > 1 else None
        self.smoke = SMOKE_PREFIX if document["config"].get("quick") else ""


def accuracy_figure(document: dict[str, Any]) -> Any:
    """Test accuracy of the running prediction over time, one panel per framework; returns the matplotlib Figure.

    The x-axis counts the time steps seen (``t + 1`` for 0-based step ``t``), the convention of the tables' "steps
    to decision", so that a decision after ``k`` steps sits at ``x = k``. Bands: ±1 std over seeds (labelled as
    such; none with one seed). The dashed line is chance, ``1/C``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    context = _PlotContext(document)
    chance = 1.0 / document["dataset"]["num_classes"]
    frameworks = context.frameworks
    figure, axes = plt.subplots(1, len(frameworks), figsize=(5.5 * len(frameworks), 4.2), squeeze=False, sharey=True)
    for axis, framework in zip(axes[0], frameworks, strict=True):
        steps: list[int] = []
        for loss in context.losses:
            curve = context.by_key[framework, loss]["summary"]["accuracy_over_time"]
            mean, std = curve["mean"], curve["std"]
            steps = list(range(1, len(mean) + 1))
            axis.plot(steps, mean, label=loss, color=context.colours[loss])
            if context.spread:
                low = [value - spread for value, spread in zip(mean, std, strict=True)]
                high = [value + spread for value, spread in zip(mean, std, strict=True)]
                axis.fill_between(steps, low, high, color=context.colours[loss], alpha=0.2, linewidth=0)
        axis.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance (1/C = {chance:.2f})")
        axis.set(title=framework, xlabel="time steps seen (t + 1)", ylim=(0, 1), xlim=(1, max(len(steps), 2)))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy of the running prediction")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if context.spread:
        handles.append(Patch(color="grey", alpha=0.2))
        labels.append(f"band: {context.spread}")
    # Upper left: the curves start near zero and rise, so that corner stays clear.
    axes[0][-1].legend(handles, labels, loc="upper left", fontsize="small")
    figure.suptitle(f"{context.smoke}{run_description(document)}", fontsize="medium")
    return figure


ACTIVITY_PANELS = (
    ("output_spikes_per_sample", "output spikes per sample"),
    ("hidden_spikes_per_sample", "hidden-layer spikes per sample"),
    ("hidden_synaptic_operations_per_sample", "synaptic operations per sample\ndriven by hidden spikes"),
)


def activity_figure(document: dict[str, Any]) -> Any:
    """Bars of the activity the loss can change (:data:`ACTIVITY_PANELS`), per framework and loss; returns the
    Figure. Error bars: ±1 std over seeds (said in the title). The input's events and operations, the same for every
    loss, are given in the title instead of as bars that would dwarf the rest."""
    import matplotlib.pyplot as plt

    context = _PlotContext(document)
    frameworks, losses = context.frameworks, context.losses
    figure, axes = plt.subplots(1, len(ACTIVITY_PANELS), figsize=(5 * len(ACTIVITY_PANELS), 4.4), squeeze=False)
    width = 0.8 / len(losses)
    for axis, (metric, quantity) in zip(axes[0], ACTIVITY_PANELS, strict=True):
        for index, loss in enumerate(losses):
            measures = [context.by_key[framework, loss]["summary"][metric] for framework in frameworks]
            positions = [position + (index - (len(losses) - 1) / 2) * width for position in range(len(frameworks))]
            axis.bar(
                positions,
                [measure["mean"] or 0.0 for measure in measures],
                width,
                yerr=[measure["std"] or 0.0 for measure in measures] if context.spread else None,
                capsize=3,
                label=loss,
                color=context.colours[loss],
            )
        axis.set_xticks(range(len(frameworks)), frameworks)
        axis.set_ylabel(quantity)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    note = input_activity_line(document).replace("left out above", "not shown")
    figure.suptitle(
        f"{context.smoke}Activity the loss can change, per test sample ({run_description(document)})"
        f"{'; error bars: ' + context.spread if context.spread else ''}\n{note}",
        fontsize="small",
    )
    return figure


def training_figure(document: dict[str, Any]) -> Any:
    """Training loss and validation accuracy per epoch of the chosen candidates (mean over seeds); returns the
    Figure."""
    import matplotlib.pyplot as plt

    context = _PlotContext(document)
    frameworks = context.frameworks
    figure, axes = plt.subplots(2, len(frameworks), figsize=(5.5 * len(frameworks), 7), squeeze=False)
    for column, framework in enumerate(frameworks):
        for loss in context.losses:
            seed_curves = [seed["curves"] for seed in context.by_key[framework, loss]["seeds"]]
            epochs = list(range(1, len(seed_curves[0]["train_loss"]) + 1))
            for row, key in enumerate(("train_loss", "validation_accuracy")):
                values = [curves[key] for curves in seed_curves]
                mean = [sum(per_epoch) / len(per_epoch) for per_epoch in zip(*values, strict=True)]
                axes[row][column].plot(epochs, mean, marker="o", label=loss, color=context.colours[loss])
        axes[0][column].set(title=framework, yscale="log", ylabel="training loss (each loss its own scale)")
        axes[1][column].set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1))
        for row in range(2):
            axes[row][column].grid(alpha=0.3)
    axes[1][-1].legend(loc="lower right", fontsize="small")
    seeds = f" (mean over {context.seeds} seeds)" if context.seeds > 1 else ""
    figure.suptitle(f"{context.smoke}Training of the chosen candidates{seeds}", fontsize="medium")
    return figure


_ALPHA_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")


def early_exit_figure(document: dict[str, Any]) -> Any:
    """Early-exit test accuracy against the mean share of time steps used, one panel per framework; returns the
    Figure.

    One curve per loss (colour) through its "accuracy" rules in order of alpha, one point per calibration alpha
    (its marker, in the legend); the loss's full-window accuracy is the star at a share of 1 and the dotted line.
    Error bars: ±1 std over seeds (none with one seed).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    context = _PlotContext(document)
    frameworks = context.frameworks
    alphas = list(dict.fromkeys(
        entry["alpha"] for record in document["records"] for entry in record["summary"].get("early_exit", [])
        if entry["method"] == "accuracy"
    ))  # fmt: skip
    markers = {alpha: _ALPHA_MARKERS[index % len(_ALPHA_MARKERS)] for index, alpha in enumerate(alphas)}
    figure, axes = plt.subplots(1, len(frameworks), figsize=(5.5 * len(frameworks), 4.6), squeeze=False, sharey=True)
    shown: list[float] = []
    for axis, framework in zip(axes[0], frameworks, strict=True):
        for loss in context.losses:
            record = context.by_key[framework, loss]
            colour = context.colours[loss]
            entries = [
                entry for entry in record["summary"].get("early_exit", [])
                if entry["method"] == "accuracy" and entry["exit_fraction"]["mean"] is not None
            ]  # fmt: skip
            shares = [entry["exit_fraction"]["mean"] for entry in entries]
            accuracies = [entry["accuracy"]["mean"] for entry in entries]
            axis.plot(shares, accuracies, color=colour, linewidth=1, label=loss)
            for entry, share, accuracy in zip(entries, shares, accuracies, strict=True):
                if context.spread:
                    axis.errorbar(
                        share, accuracy, xerr=entry["exit_fraction"]["std"] or 0.0,
                        yerr=entry["accuracy"]["std"] or 0.0, color=colour, alpha=0.5, capsize=2, linewidth=0.8,
                    )  # fmt: skip
                axis.plot(share, accuracy, marker=markers[entry["alpha"]], color=colour, markersize=5)
            full = record["summary"]["accuracy"]["mean"]
            shown += accuracies
            if full is not None:
                shown.append(full)
                axis.plot([1.0], [full], marker="*", markersize=11, color=colour, linestyle="none")
                axis.axhline(full, color=colour, linestyle=":", linewidth=1)
        axis.set(title=framework, xlabel="share of the time steps used (mean of (exit step + 1) / T)", xlim=(0, 1.05))
        axis.grid(alpha=0.3)
    # Accuracies of trained networks sit close together: zoom on them rather than show 0..1.
    low = max(0.0, min(shown, default=0.0) - 0.05)
    axes[0][0].set(ylabel="test accuracy with early exit", ylim=(low, min(1.0, max(shown, default=1.0) + 0.03)))
    handles, labels = axes[0][-1].get_legend_handles_labels()
    handles.append(Line2D([], [], marker="*", color="grey", linestyle=":", markersize=9))
    labels.append("full window")
    for alpha in alphas:
        handles.append(Line2D([], [], marker=markers[alpha], color="grey", linestyle="none"))
        labels.append(f"alpha = {alpha:g}")
    axes[0][-1].legend(handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    spread = f"; bars: {context.spread}" if context.spread else ""
    figure.suptitle(
        f"{context.smoke}Early exit with the rules calibrated on validation to lose at most alpha accuracy there\n"
        f"{run_description(document)}{spread}",
        fontsize="small",
    )
    return figure


def write_plots(document: dict[str, Any], out_dir: Path) -> Iterator[Path]:
    """Draw the four figures of ``document`` into ``out_dir`` (names in
    :data:`spikemax_bench.render.PLOTS`), each atomically; yields each path once written."""
    for name, draw in (
        ("accuracy-plot", accuracy_figure),
        ("spikes-plot", activity_figure),
        ("training-plot", training_figure),
        ("early-exit-plot", early_exit_figure),
    ):
        yield _save(draw(document), out_dir / PLOTS[name][0])


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    # No "Software" text chunk and no time stamp: the same figure gives the same bytes.
    figure.savefig(buffer, dpi=120, format="png", metadata={"Software": None})
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def results_document(
    *,
    config: dict[str, Any],
    dataset: Any,
    records: list[dict[str, Any]],
    grid: dict[str, list[Candidate]],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The content of results.json (see the module docstring); ``dataset`` is the first seed's SpikeDataset."""
    return {
        "schema_version": SCHEMA_VERSION,
        "provenance": provenance,
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
        "candidates": {
            loss: [{"hyper_parameters": c.hyper_parameters, "learning_rate": c.learning_rate} for c in candidates]
            for loss, candidates in grid.items()
        },
        "records": records,
        "verdicts": verdicts(records, quick=bool(config.get("quick"))),
    }
