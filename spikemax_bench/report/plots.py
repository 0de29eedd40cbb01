"""The four figures of a run, drawn on matplotlib's Agg canvas (``Figure`` + ``FigureCanvasAgg``): no pyplot and
no switch of the global backend, so drawing them changes nothing for the rest of the process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..render import ENERGY_PLOT, PLOTS, SMOKE_PREFIX, input_activity_line, run_description
from ..render.energy import all_records, has_per_decision, headline_accuracy
from ..store import atomic_write_bytes
from ..verdicts import activity_penalty_of

__all__ = [
    "accuracy_figure",
    "activity_figure",
    "early_exit_figure",
    "energy_figure",
    "training_figure",
    "write_plots",
]


def _subplots(rows: int, columns: int, *, figsize: tuple[float, float], **options: Any) -> tuple[Any, Any]:
    """A Figure on its own Agg canvas and its grid of axes (``Figure.subplots``): what ``pyplot.subplots`` gives,
    without pyplot's global figure manager or backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, **options)


class _PlotContext:
    """What every figure of a run needs: frameworks, losses, colours, the seeds' spread, the smoke label."""

    def __init__(self, document: dict[str, Any]) -> None:
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
    from matplotlib.patches import Patch

    context = _PlotContext(document)
    chance = 1.0 / document["dataset"]["num_classes"]
    frameworks = context.frameworks
    figure, axes = _subplots(1, len(frameworks), figsize=(5.5 * len(frameworks), 4.2), squeeze=False, sharey=True)
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
    context = _PlotContext(document)
    frameworks, losses = context.frameworks, context.losses
    figure, axes = _subplots(1, len(ACTIVITY_PANELS), figsize=(5 * len(ACTIVITY_PANELS), 4.4), squeeze=False)
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
    context = _PlotContext(document)
    frameworks = context.frameworks
    figure, axes = _subplots(2, len(frameworks), figsize=(5.5 * len(frameworks), 7), squeeze=False)
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
    from matplotlib.lines import Line2D

    context = _PlotContext(document)
    frameworks = context.frameworks
    alphas = list(dict.fromkeys(
        entry["alpha"] for record in document["records"] for entry in record["summary"].get("early_exit", [])
        if entry["method"] == "accuracy"
    ))  # fmt: skip
    markers = {alpha: _ALPHA_MARKERS[index % len(_ALPHA_MARKERS)] for index, alpha in enumerate(alphas)}
    figure, axes = _subplots(1, len(frameworks), figsize=(5.5 * len(frameworks), 4.6), squeeze=False, sharey=True)
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


def energy_figure(document: dict[str, Any]) -> Any:
    """Test accuracy against synaptic operations per decision (log x), one row of panels per framework: early
    exit with the headline rule (left) and the full window (right); returns the Figure.

    One line per loss through its activity penalties λ (each point labelled with its λ), so each loss's
    trade-off, and whose front lies up and to the left, shows at a glance. Means over seeds.
    """
    from matplotlib.ticker import FuncFormatter

    thousands = FuncFormatter(lambda value, _: f"{value / 1000:g}k")
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}  # every λ of a framework x loss
    for record in all_records(document):
        by_key.setdefault((record["framework"], record["loss"]), []).append(record)
    context = _PlotContext(document)
    frameworks = context.frameworks
    windows = (("early_exit", "early exit"), ("full_window", "full window"))
    figure, axes = _subplots(
        len(frameworks), 2, figsize=(11.0, 4.0 * len(frameworks)), squeeze=False, sharey="row"
    )
    for row, framework in zip(axes, frameworks, strict=True):
        for axis, (window, title) in zip(row, windows, strict=True):
            for loss in context.losses:
                points = []
                for record in by_key.get((framework, loss), []):
                    summary = record["summary"]
                    operations = summary["per_decision"]["synaptic_operations_per_decision"][window]["mean"]
                    accuracy = (summary["accuracy"] if window == "full_window" else headline_accuracy(record))["mean"]
                    if operations is not None and accuracy is not None:
                        points.append((activity_penalty_of(record), operations, accuracy))
                points.sort()
                colour = context.colours[loss]
                axis.plot([p[1] for p in points], [p[2] for p in points], marker="o", color=colour, label=loss)
                for penalty, operations, accuracy in points:
                    axis.annotate(f"{penalty:g}", (operations, accuracy), textcoords="offset points", xytext=(3, 3),
                                  fontsize="x-small", color=colour)  # fmt: skip
            axis.set_xscale("log")
            # Thousands on every tick: a narrow log range (the full window's) otherwise gets overlapping 10^x labels.
            axis.xaxis.set_major_formatter(thousands)
            axis.xaxis.set_minor_formatter(thousands)
            axis.tick_params(axis="x", which="both", labelsize="x-small")
            axis.set(title=f"{framework}, {title}", xlabel="synaptic operations per decision (log)")
            axis.grid(alpha=0.3, which="both")
        row[0].set(ylabel="test accuracy")
    axes[0][-1].legend(loc="lower right", fontsize="small")
    figure.suptitle(
        f"{context.smoke}Accuracy against synaptic operations per decision; labels: activity penalty λ\n"
        f"{run_description(document)}",
        fontsize="small",
    )
    return figure


def write_plots(document: dict[str, Any], out_dir: Path) -> Iterator[Path]:
    """Draw the figures of ``document`` into ``out_dir`` (names in :data:`spikemax_bench.render.PLOTS`, and
    :data:`~spikemax_bench.render.ENERGY_PLOT` for a run with per-decision measures), each atomically; yields
    each path once written."""
    for name, draw in (
        ("accuracy-plot", accuracy_figure),
        ("spikes-plot", activity_figure),
        ("training-plot", training_figure),
        ("early-exit-plot", early_exit_figure),
    ):
        yield _save(draw(document), out_dir / PLOTS[name][0])
    if has_per_decision(document):
        yield _save(energy_figure(document), out_dir / ENERGY_PLOT[0])


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    buffer = io.BytesIO()
    # No "Software" text chunk and no time stamp: the same figure gives the same bytes.
    figure.savefig(buffer, dpi=120, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path
